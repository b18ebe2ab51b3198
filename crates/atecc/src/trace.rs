//! An `I2c` adapter that reports every transfer to a callback, for `--trace-i2c` on the host and
//! for debugging real boards.

use embedded_hal::i2c::{ErrorKind, ErrorType, I2c, Operation};

/// Direction of a transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Direction {
    /// Host to device.
    Write,
    /// Device to host.
    Read,
}

/// One transfer as seen on the bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceEvent<'a> {
    /// Direction.
    pub direction: Direction,
    /// 7-bit address.
    pub address: u8,
    /// Bytes written, or bytes read (unspecified content when the read failed).
    pub bytes: &'a [u8],
    /// `None` on success, else the error kind of the whole transaction.
    pub error: Option<ErrorKind>,
}

/// A short name for an I2C error kind.
pub fn error_kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Bus => "bus error",
        ErrorKind::ArbitrationLoss => "arbitration loss",
        ErrorKind::NoAcknowledge(_) => "NACK",
        ErrorKind::Overrun => "overrun",
        _ => "other",
    }
}

// `embedded_hal::i2c::ErrorKind` has no defmt 1 `Format` impl, so format the event by hand.
#[cfg(feature = "defmt")]
impl defmt::Format for TraceEvent<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "i2c {} 0x{:02X} {=[u8]:02X} {}",
            self.direction,
            self.address,
            self.bytes,
            self.error.map(error_kind_name).unwrap_or("ok")
        )
    }
}

/// Wraps an `I2c` and calls `F` after each transfer.
pub struct TracingI2c<I, F> {
    inner: I,
    callback: F,
}

impl<I, F> TracingI2c<I, F> {
    /// Wrap `inner`.
    pub fn new(inner: I, callback: F) -> Self {
        TracingI2c { inner, callback }
    }

    /// Unwrap.
    pub fn into_inner(self) -> I {
        self.inner
    }

    /// The wrapped bus.
    pub fn inner_mut(&mut self) -> &mut I {
        &mut self.inner
    }
}

impl<I: ErrorType, F> ErrorType for TracingI2c<I, F> {
    type Error = I::Error;
}

fn kind<E: embedded_hal::i2c::Error>(r: &Result<(), E>) -> Option<ErrorKind> {
    r.as_ref().err().map(|e| e.kind())
}

impl<I: I2c, F: FnMut(TraceEvent<'_>)> I2c for TracingI2c<I, F> {
    fn read(&mut self, address: u8, read: &mut [u8]) -> Result<(), Self::Error> {
        let r = self.inner.read(address, read);
        let error = kind(&r);
        (self.callback)(TraceEvent {
            direction: Direction::Read,
            address,
            bytes: read,
            error,
        });
        r
    }

    fn write(&mut self, address: u8, write: &[u8]) -> Result<(), Self::Error> {
        let r = self.inner.write(address, write);
        let error = kind(&r);
        (self.callback)(TraceEvent {
            direction: Direction::Write,
            address,
            bytes: write,
            error,
        });
        r
    }

    fn write_read(
        &mut self,
        address: u8,
        write: &[u8],
        read: &mut [u8],
    ) -> Result<(), Self::Error> {
        let r = self.inner.write_read(address, write, read);
        let error = kind(&r);
        (self.callback)(TraceEvent {
            direction: Direction::Write,
            address,
            bytes: write,
            error,
        });
        (self.callback)(TraceEvent {
            direction: Direction::Read,
            address,
            bytes: read,
            error,
        });
        r
    }

    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), Self::Error> {
        let r = self.inner.transaction(address, operations);
        let error = kind(&r);
        for op in operations.iter() {
            let (direction, bytes): (Direction, &[u8]) = match op {
                Operation::Read(b) => (Direction::Read, b),
                Operation::Write(b) => (Direction::Write, b),
            };
            (self.callback)(TraceEvent {
                direction,
                address,
                bytes,
                error,
            });
        }
        r
    }
}
