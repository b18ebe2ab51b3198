//! Baud negotiation (`SetBaud`, docs/protocol.md §4.2) over the in-process link, whose ends
//! garble what they receive while their rates differ: every case ends at a rate both ends use,
//! proven by a `Hello` answered there.

mod common;

use keystamp::engine::DeviceResult;
use keystamp::link::Link;
use keystamp::sim::{LinkFaults, SimDevice, SimDeviceOptions, SimLink};
use keystamp_atecc_sim::{FaultConfig, Timing};
use keystamp_wire::{FEATURE_SET_BAUD, Request, Response};

fn device(state: &std::path::Path, max_baud: u32, link_faults: LinkFaults) -> SimDevice {
    SimDevice::start_on(
        SimDeviceOptions {
            name: "baud".into(),
            state_dir: state.to_path_buf(),
            timing: Timing::Instant,
            baud: None,
            seed: Some(7),
            faults: FaultConfig::default(),
            trace: None,
            platform: keystamp_wire::PlatformSecurity::UNKNOWN,
            max_baud,
            link_faults,
        },
        SimLink::InProcess,
    )
    .unwrap()
}

/// Hello, then the negotiation up to `host_max`; returns the rate and the link.
fn negotiate(dev: &SimDevice, host_max: u32) -> (u32, Link<Box<dyn serialport::SerialPort>>, u32) {
    let mut link = common::link_to(dev);
    let Response::Hello(hello) = link.call(&Request::Hello).unwrap() else {
        panic!("no Hello")
    };
    let rate = link.negotiate_baud(host_max, hello.features).unwrap();
    (rate, link, hello.features)
}

/// The device answers at the link's rate (a mismatch garbles every frame).
fn answers_at_the_final_rate(link: &mut Link<Box<dyn serialport::SerialPort>>) {
    assert!(matches!(link.call(&Request::Hello), Ok(Response::Hello(_))));
}

#[test]
fn mismatched_maximums_meet_at_the_lower_one() {
    let dir = tempfile::tempdir().unwrap();
    // The device stops at 460800: the host's 921600 is refused, the next step taken.
    let dev = device(dir.path(), 460_800, LinkFaults::default());
    let (rate, mut link, _) = negotiate(&dev, 921_600);
    assert_eq!(rate, 460_800);
    assert_eq!(link.baud(), 460_800);
    answers_at_the_final_rate(&mut link);
    drop(link);
    drop(dev);
    // The host stops at 230400, the device could go faster.
    let dev = device(&dir.path().join("b"), 921_600, LinkFaults::default());
    let (rate, mut link, _) = negotiate(&dev, 230_400);
    assert_eq!(rate, 230_400);
    answers_at_the_final_rate(&mut link);
}

#[test]
fn a_lost_confirmation_frame_is_sent_again_at_the_new_rate() {
    let dir = tempfile::tempdir().unwrap();
    let faults = LinkFaults {
        lose_baud_confirmation: true,
        ..LinkFaults::default()
    };
    let dev = device(dir.path(), 921_600, faults);
    let (rate, mut link, _) = negotiate(&dev, 921_600);
    // The retransmitted Hello confirms the new rate.
    assert_eq!(rate, 921_600);
    assert!(link.stats().retries >= 1, "the lost frame was sent again");
    answers_at_the_final_rate(&mut link);
}

#[test]
fn a_device_that_does_not_reach_the_new_rate_is_met_at_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let faults = LinkFaults {
        baud_switch_fails: true,
        ..LinkFaults::default()
    };
    let dev = device(dir.path(), 921_600, faults);
    let (rate, mut link, _) = negotiate(&dev, 921_600);
    assert_eq!(rate, 115_200, "no confirmation: back to the old rate");
    answers_at_the_final_rate(&mut link);
}

#[test]
fn a_device_without_set_baud_is_not_asked_and_stays_at_115200() {
    let dir = tempfile::tempdir().unwrap();
    let dev = device(dir.path(), 0, LinkFaults::default());
    let (rate, mut link, features) = negotiate(&dev, 921_600);
    assert_eq!(features & FEATURE_SET_BAUD, 0);
    assert_eq!(rate, 115_200);
    assert_eq!(link.stats().requests, 1, "only the Hello was sent");
    answers_at_the_final_rate(&mut link);
    // Asked anyway, it refuses, and the line stays usable.
    assert!(link.call(&Request::SetBaud { baud: 921_600 }).is_err());
    answers_at_the_final_rate(&mut link);
}

#[test]
fn a_provisioning_with_baud_max_runs_at_the_negotiated_rate() {
    let mut fx = common::fixture();
    fx.material.baud_max = Some(921_600);
    let dev = device(&fx.dir.path().join("sims"), 921_600, LinkFaults::default());
    let report = common::run(&fx, &dev);
    assert_eq!(report.result, DeviceResult::Provisioned, "{report:?}");
    assert_eq!(report.link.baud, 921_600);
}
