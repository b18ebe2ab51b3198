//! `keystamp maintain` through the engine, against simulated devices over their ptys: the right
//! signer key authenticates, another project's does not, and an erased blob is stored again.

mod common;

use common::{device, fixture, run, station};
use keystamp::engine::{DeviceResult, MaintenanceOp};
use keystamp_atecc_sim::FaultConfig;
use keystamp_wire::Lifecycle;

fn maintain(
    fx: &common::Fixture,
    signer: &keystamp::pki::ca::Signer,
    dev: &keystamp::sim::SimDevice,
    op: MaintenanceOp,
) -> (
    keystamp::engine::DeviceReport,
    Option<keystamp_wire::HelloInfo>,
) {
    station(fx, signer, dev).maintain(op)
}

fn verify(fx: &common::Fixture, dev: &keystamp::sim::SimDevice) -> DeviceResult {
    station(fx, &fx.signer, dev).verify_only().result
}

#[test]
fn status_authenticates_with_the_project_signer_only() {
    let fx = fixture();
    let other = fixture();
    let state = fx.dir.path().join("sim");
    let dev = device(&state, "m0", 71, FaultConfig::default());
    assert_eq!(run(&fx, &dev).result, DeviceResult::Provisioned);

    let (report, hello) = maintain(&fx, &fx.signer, &dev, MaintenanceOp::Status);
    assert_eq!(
        report.result,
        DeviceResult::AlreadyProvisioned,
        "{report:?}"
    );
    let hello = hello.unwrap();
    assert_eq!(hello.lifecycle, Lifecycle::Locked);
    assert!(hello.def_blob.is_some() && !hello.blob_untrusted);

    // Another project's signer key: the chip's Verify against slot 11 refuses it.
    let (report, _) = maintain(&fx, &other.signer, &dev, MaintenanceOp::Status);
    let DeviceResult::Failed(why) = &report.result else {
        panic!("{report:?}")
    };
    assert!(
        why.contains("MaintenanceAuth") && why.contains("maintenance authentication failed"),
        "{why}"
    );
    let (report, _) = maintain(&fx, &other.signer, &dev, MaintenanceOp::StoreBlob);
    assert!(
        matches!(report.result, DeviceResult::Failed(_)),
        "{report:?}"
    );
}

#[test]
fn an_erased_blob_is_stored_again_by_maintenance_and_the_device_verifies() {
    let fx = fixture();
    let state = fx.dir.path().join("sim");
    let dev = device(&state, "m1", 72, FaultConfig::default());
    let first = run(&fx, &dev);
    assert_eq!(first.result, DeviceResult::Provisioned);

    // Flash erased (a new firmware flashed over the partition), device reset.
    let flash = state.join("m1.flash");
    let size = std::fs::metadata(&flash).unwrap().len() as usize;
    std::fs::write(&flash, vec![0xFFu8; size]).unwrap();
    dev.reset();
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(matches!(verify(&fx, &dev), DeviceResult::Failed(_)));
    // Still Locked (the life cycle is the chip's): provisioning cannot store the blob...
    let again = run(&fx, &dev);
    assert!(matches!(again.result, DeviceResult::Failed(_)), "{again:?}");
    // ...an authenticated maintenance session can.
    let (report, _) = maintain(&fx, &fx.signer, &dev, MaintenanceOp::StoreBlob);
    assert_eq!(
        report.result,
        DeviceResult::AlreadyProvisioned,
        "{report:?}"
    );
    assert_eq!(report.cert_serial, first.cert_serial);
    assert_eq!(verify(&fx, &dev), DeviceResult::AlreadyProvisioned);
}
