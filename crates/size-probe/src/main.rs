//! Flash-size probe: what a device links to rebuild its certificate chain from the stored
//! definition blob and chip data — `DefBlob::parse`, `read_plan`, `rebuild` (signer, then device
//! with the signer's public key for the AKI). Inputs are `black_box`ed so nothing folds away.
#![no_std]
#![no_main]

use core::hint::black_box;

use keystamp_certdef::rebuild::BLOCK_SIZE;
use keystamp_certdef::{CertView, DefBlob, DeviceLoc, Role, read_plan, rebuild};

/// Stand-in for the flash page holding the blob and for the bytes read from the chip (in RAM,
/// so it does not count as flash).
static mut FLASH: [u8; 2048] = [0; 2048];

fn flash() -> &'static [u8] {
    // SAFETY: single-threaded probe; FLASH is never written.
    black_box(unsafe { &*core::ptr::addr_of!(FLASH) })
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}

fn rebuild_one(
    blob: &DefBlob<'_>,
    role: Role,
    ca: Option<&[u8; 64]>,
    out: &mut [u8],
) -> Option<usize> {
    let def = blob.by_role(role)?;
    let plan = read_plan(&def, BLOCK_SIZE).ok()?;
    let mut reads: heapless::Vec<(DeviceLoc, &[u8]), 16> = heapless::Vec::new();
    for loc in &plan {
        let bytes: &[u8] = flash().get(..loc.count as usize)?;
        reads.push((*loc, bytes)).ok()?;
    }
    rebuild(&def, reads.as_slice(), ca, out).ok()
}

#[unsafe(no_mangle)]
pub extern "C" fn _start() -> ! {
    let mut signer = [0u8; 768];
    let mut device = [0u8; 768];
    loop {
        let bytes: &[u8] = flash();
        if let Ok(blob) = DefBlob::parse(bytes) {
            black_box(blob.blob_id());
            let root = blob.root_public_key();
            if let Some(n) = rebuild_one(&blob, Role::Signer, root, &mut signer) {
                let signer_key = blob
                    .signer_def()
                    .and_then(|d| CertView::new(&d, &signer[..n]).public_key().ok());
                if let Some(m) = rebuild_one(&blob, Role::Device, signer_key.as_ref(), &mut device)
                {
                    black_box(&device[..m]);
                }
            }
        }
    }
}
