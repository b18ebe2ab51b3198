// Included by build.rs (host) and src/main.rs (riscv32imc): the host encodes these requests and
// answers with its build of keystamp-wire; the device build must decode the requests to the same
// values and encode byte-identical answers.

use keystamp_wire::{
    ChipInfo, Chunk, DefBlobId, FirmwareVersion, HelloInfo, MAX_CHUNK, MAX_LINE, Request, Response,
};

/// Requests a provisioning session starts with, each with the answer a device gives.
pub fn wire_cases() -> [(Request, Response); 3] {
    let hello = HelloInfo {
        max_line: MAX_LINE as u16,
        max_chunk: MAX_CHUNK as u16,
        features: 0b110,
        firmware: FirmwareVersion {
            major: 0,
            minor: 1,
            patch: 0,
        },
        chip: ChipInfo {
            revision: [0x00, 0x00, 0x60, 0x02],
            serial: [0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF, 0xEE],
            config_locked: true,
            data_locked: false,
            slot_locked: 0xFFFE,
        },
        def_blob: Some(DefBlobId {
            len: 1234,
            digest: [0x5A; 32],
        }),
        protocol: keystamp_wire::PROTOCOL_VERSION,
        lifecycle: keystamp_wire::Lifecycle::Provisioning,
        blob_untrusted: false,
        maintenance: false,
        platform: keystamp_wire::PlatformSecurity {
            secure_boot: keystamp_wire::Tristate::On,
            flash_encryption: keystamp_wire::Tristate::Off,
            jtag_disabled: keystamp_wire::Tristate::Unknown,
            download_mode_disabled: keystamp_wire::Tristate::On,
        },
    };
    let mut data = [0u8; 64];
    for (i, b) in data.iter_mut().enumerate() {
        *b = i as u8;
    }
    let chunk = Chunk::from_slice(&data).unwrap_or_default();
    [
        (Request::Hello, Response::Hello(hello)),
        (
            Request::ReadSlot {
                slot: 8,
                offset: 32,
                len: 64,
            },
            Response::Data(chunk),
        ),
        (Request::Random, Response::Random([0xA5; 32])),
    ]
}
