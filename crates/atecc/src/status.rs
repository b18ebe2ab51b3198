//! Status codes the chip returns in 4-byte response groups (reference §2.5).

/// A status byte from a 4-byte response group, every documented code typed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Status {
    /// 0x00: command executed successfully.
    Success,
    /// 0x01: CheckMac or Verify miscompare (the command ran; the answer is "no").
    Miscompare,
    /// 0x03: length, opcode or parameters illegal regardless of device state.
    ParseError,
    /// 0x05: computation error during ECC processing; a retry may succeed.
    EccFault,
    /// 0x07: self-test failure; the chip stays in failure mode until cleared.
    SelfTestError,
    /// 0x08: random-number-generator health test failure.
    HealthTestError,
    /// 0x0F: command received but not executable in the current state (locks, slot policy,
    /// TempKey invalid, ...).
    ExecutionError,
    /// 0x11: the chip woke up and has not yet received a command.
    AfterWake,
    /// 0xEE: the watchdog would expire during execution; the command was not executed.
    WatchdogAboutToExpire,
    /// 0xFF: CRC or other communication error; the command was not parsed or executed.
    CommunicationError,
    /// Any other value (undocumented).
    Unknown(u8),
}

impl Status {
    /// Classify a status byte.
    pub const fn from_code(code: u8) -> Self {
        match code {
            0x00 => Status::Success,
            0x01 => Status::Miscompare,
            0x03 => Status::ParseError,
            0x05 => Status::EccFault,
            0x07 => Status::SelfTestError,
            0x08 => Status::HealthTestError,
            0x0F => Status::ExecutionError,
            0x11 => Status::AfterWake,
            0xEE => Status::WatchdogAboutToExpire,
            0xFF => Status::CommunicationError,
            other => Status::Unknown(other),
        }
    }

    /// The byte on the wire.
    pub const fn code(self) -> u8 {
        match self {
            Status::Success => 0x00,
            Status::Miscompare => 0x01,
            Status::ParseError => 0x03,
            Status::EccFault => 0x05,
            Status::SelfTestError => 0x07,
            Status::HealthTestError => 0x08,
            Status::ExecutionError => 0x0F,
            Status::AfterWake => 0x11,
            Status::WatchdogAboutToExpire => 0xEE,
            Status::CommunicationError => 0xFF,
            Status::Unknown(c) => c,
        }
    }

    /// True for `Success`.
    pub const fn is_success(self) -> bool {
        matches!(self, Status::Success)
    }

    /// True when the command was not executed and resending the same bytes is safe
    /// (communication error, watchdog refusal, or the chip still in its after-wake state).
    pub const fn is_resendable(self) -> bool {
        matches!(
            self,
            Status::CommunicationError | Status::WatchdogAboutToExpire | Status::AfterWake
        )
    }

    /// A short human-readable description.
    pub const fn description(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::Miscompare => "checkmac/verify miscompare",
            Status::ParseError => "parse error (illegal length, opcode or parameters)",
            Status::EccFault => "ECC computation fault",
            Status::SelfTestError => "self-test error",
            Status::HealthTestError => "RNG health test error",
            Status::ExecutionError => "execution error (not allowed in the current state)",
            Status::AfterWake => "awake, no command received yet",
            Status::WatchdogAboutToExpire => "watchdog about to expire, command not executed",
            Status::CommunicationError => "CRC or communication error, command not executed",
            Status::Unknown(_) => "undocumented status code",
        }
    }
}

impl core::fmt::Display for Status {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "status 0x{:02X}: {}", self.code(), self.description())
    }
}
