//! Rebuild with an arbitrary (unvalidated) definition and arbitrary device data, then split
//! whatever came out: typed errors only, never a panic.
#![no_main]

use keystamp_certdef::{
    CertDef, CertElement, CertElements, CertLoc, CertType, DateFormat, DeviceData, DeviceImage,
    DeviceLoc, DeviceZone, SnSource, Transform, rebuild, split,
};
use libfuzzer_sys::fuzz_target;

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u8(&mut self) -> u8 {
        let (b, rest) = self
            .0
            .split_first()
            .map(|(b, r)| (*b, r))
            .unwrap_or((0, &[]));
        self.0 = rest;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()]) % 1200
    }
    fn cert_loc(&mut self) -> CertLoc {
        CertLoc::new(self.u16(), self.u16() % 300)
    }
    fn device_loc(&mut self) -> DeviceLoc {
        let zones = DeviceZone::ALL;
        DeviceLoc {
            zone: zones[self.u8() as usize % zones.len()],
            slot: self.u8() as u16 % 18,
            is_genkey: self.u8() & 1 == 1,
            offset: self.u16() % 500,
            count: self.u16() % 500,
        }
    }
    fn pick<T: Copy>(&mut self, all: &[T]) -> T {
        all[self.u8() as usize % all.len()]
    }
}

/// Device data: every location reads bytes from the fuzz input (wrapping), so any plan works.
struct Pool([u8; 1024]);

impl DeviceData for Pool {
    fn read(&self, loc: &DeviceLoc) -> Option<&[u8]> {
        let start = loc.offset as usize % 512;
        self.0.get(start..start + loc.count as usize)
    }
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader(data);
    let mut std_cert_elements = [CertLoc::default(); 8];
    for l in &mut std_cert_elements {
        *l = r.cert_loc();
    }
    let elements: Vec<CertElement> = (0..r.u8() % 4)
        .map(|_| CertElement {
            id: heapless::String::new(),
            device_loc: r.device_loc(),
            cert_loc: r.cert_loc(),
            transforms: [r.pick(Transform::ALL), r.pick(Transform::ALL)],
        })
        .collect();
    let mut def = CertDef {
        cert_type: r.pick(CertType::ALL),
        template_id: r.u8() & 0xF,
        chain_id: r.u8() & 0xF,
        private_key_slot: 0,
        sn_source: r.pick(SnSource::ALL),
        cert_sn_dev_loc: r.device_loc(),
        issue_date_format: r.pick(DateFormat::ALL),
        expire_date_format: r.pick(DateFormat::ALL),
        tbs_cert_loc: r.cert_loc(),
        expire_years: r.u8(),
        public_key_dev_loc: r.device_loc(),
        comp_cert_dev_loc: r.device_loc(),
        std_cert_elements,
        cert_elements: CertElements::Slice(&elements),
        template: &[],
        name: keystamp_certdef::Name::default(),
        ca_cert_def: None,
    };
    let template_len = (r.u16() as usize).min(r.0.len());
    let (template, rest) = r.0.split_at(template_len);
    def.template = template;
    let mut pool = Pool([0u8; 1024]);
    for (i, b) in pool.0.iter_mut().enumerate() {
        *b = rest.get(i % rest.len().max(1)).copied().unwrap_or(0);
    }
    let ca = [7u8; 64];
    let mut out = [0u8; 2048];
    let _ = def.validate();
    let _ = def.max_cert_size();
    if let Ok(n) = rebuild(&def, &pool, Some(&ca), &mut out) {
        let mut image = Box::new(DeviceImage::default());
        let mut scratch = [0u8; 2048];
        let cert = out[..n].to_vec();
        let _ = split(
            &def,
            &cert,
            Some(&ca),
            Some(&[1; 9]),
            &mut image,
            &mut scratch,
        );
    }
});
