//! Flash-size probe: what a device links to rebuild its certificate chain from the stored
//! definition blob and chip data, exactly as the device agent does it: `DefBlob::parse` once, the
//! device and signer definitions and the root key taken once, then `read_plan` + `rebuild` for the
//! signer and the device (with the signer's public key for the AKI). Inputs are `black_box`ed so
//! nothing folds away.
#![no_std]
#![no_main]

use core::hint::black_box;

use keystamp_certdef::rebuild::BLOCK_SIZE;
use keystamp_certdef::{CertDef, CertView, DefBlob, DeviceLoc, read_plan, rebuild};

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

fn rebuild_one(def: &CertDef<'_>, ca: Option<&[u8; 64]>, out: &mut [u8]) -> Option<usize> {
    let plan = read_plan(def, BLOCK_SIZE).ok()?;
    let mut reads: heapless::Vec<(DeviceLoc, &[u8]), 16> = heapless::Vec::new();
    for loc in &plan {
        let bytes: &[u8] = flash().get(..loc.count as usize)?;
        reads.push((*loc, bytes)).ok()?;
    }
    rebuild(def, reads.as_slice(), ca, out).ok()
}

/// One pass of what the device agent does (`agent::definitions_of` + `identity::rebuild_chain`):
/// parse the blob once, take the device definition, the signer definition and the root key once,
/// rebuild the signer certificate, then the device certificate with the signer's public key.
fn chain(signer_out: &mut [u8], device_out: &mut [u8]) -> Option<usize> {
    let blob = DefBlob::parse(flash()).ok()?;
    let device = blob.device_def()?;
    let signer = blob.signer_def()?;
    let root = *blob.root_public_key()?;
    let n = rebuild_one(&signer, Some(&root), signer_out)?;
    let signer_pk = CertView::new(&signer, signer_out.get(..n)?)
        .public_key()
        .ok()?;
    rebuild_one(&device, Some(&signer_pk), device_out)
}

#[unsafe(no_mangle)]
pub extern "C" fn _start() -> ! {
    let mut signer = [0u8; 768];
    let mut device = [0u8; 768];
    loop {
        if let Some(m) = chain(&mut signer, &mut device) {
            black_box(device.get(..m));
        }
    }
}
