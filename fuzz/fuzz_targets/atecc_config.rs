//! Config-zone parsing, emitting, write-op planning and linting on arbitrary bytes.
#![no_main]

use keystamp_atecc::config::{ConfigWriteOp, ConfigZone, config_write_ops};
use keystamp_atecc::lint::lint;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(cfg) = ConfigZone::from_slice(data) else {
        assert_ne!(data.len(), 128);
        return;
    };
    assert_eq!(&cfg.to_bytes()[..], data);
    let report = lint(&cfg);
    for f in report.findings() {
        assert!(f.rule.id().starts_with("ATL"));
    }
    let _ = (cfg.lock_crc(), cfg.counter(0), cfg.counter(1), cfg.i2c_address_7bit());
    for op in config_write_ops(&cfg) {
        match op {
            ConfigWriteOp::Word { offset, .. } => {
                assert!((16..84).contains(&offset) || (88..128).contains(&offset))
            }
            ConfigWriteOp::Block { offset, .. } => assert!(offset == 32 || offset == 96),
            ConfigWriteOp::UpdateExtra(_) => {}
        }
    }
});
