//! A reference device model (enough state to answer the provisioning flow) and the flow itself,
//! shared by the noisy-channel test, the transcript test and the transcript example.
#![allow(dead_code)]

use heapless::Vec as HVec;
use keystamp_wire::*;
use sha2::{Digest, Sha256};

/// ATECC CRC-16 (poly 0x8005, reflected input, init 0), as used by Lock.
pub fn atecc_crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        for bit in 0..8 {
            let d = (b >> bit) & 1;
            let c = (crc >> 15) as u8;
            crc <<= 1;
            if d != c {
                crc ^= 0x8005;
            }
        }
    }
    crc
}

/// Deterministic filler standing in for keys, signatures and certificates.
pub fn filler(seed: u32, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

pub fn arr32(seed: u32) -> [u8; 32] {
    filler(seed, 32).try_into().unwrap()
}

pub const SERIAL: [u8; 9] = [0x01, 0x23, 0x6B, 0x2C, 0x8E, 0x0F, 0x41, 0x97, 0xEE];

/// The config the flow writes: synthetic, with the serial/revision bytes of [`SERIAL`].
pub fn target_config() -> [u8; 128] {
    let mut c = [0u8; 128];
    c[..4].copy_from_slice(&SERIAL[..4]);
    c[4..8].copy_from_slice(&[0, 0, 0x60, 0x02]);
    c[8..13].copy_from_slice(&SERIAL[4..]);
    c[13] = 0xC1;
    c[14] = 0x71;
    let f = filler(1, 128);
    c[16..84].copy_from_slice(&f[16..84]);
    c[86] = 0x55;
    c[87] = 0x55;
    c[88] = 0xFF;
    c[89] = 0xFF;
    c[90..].copy_from_slice(&f[90..]);
    c
}

pub fn blob(len: usize) -> Vec<u8> {
    filler(7, len)
}

/// The device model behind a [`DeviceSession`].
pub struct FakeDevice {
    pub session: DeviceSession,
    pub config: [u8; 128],
    pub config_locked: bool,
    pub data_locked: bool,
    pub slot_locked: u16,
    pub slots: [[u8; 416]; 16],
    pub keys_made: u32,
    pub blob: Vec<u8>,
    pub blob_name: Option<(u32, [u8; 32])>,
    pub blob_complete: bool,
    /// Every execution: (seq, request, response).
    pub executed: Vec<(u16, Request, Response)>,
    pub noise_lines: usize,
}

impl Default for FakeDevice {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeDevice {
    pub fn new() -> Self {
        let mut config = [0u8; 128];
        config[..16].copy_from_slice(&target_config()[..16]);
        config[86] = 0x55;
        config[87] = 0x55;
        Self {
            session: DeviceSession::new(),
            config,
            config_locked: false,
            data_locked: false,
            slot_locked: 0,
            slots: [[0; 416]; 16],
            keys_made: 0,
            blob: Vec::new(),
            blob_name: None,
            blob_complete: false,
            executed: Vec::new(),
            noise_lines: 0,
        }
    }

    /// Feeds received bytes; returns everything the device writes back.
    pub fn handle(&mut self, mut input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        while !input.is_empty() {
            let (used, ev) = self.session.feed(input);
            input = &input[used..];
            let (seq, request) = match ev {
                Some(DeviceEvent::Request { seq, request }) => (seq, request),
                Some(DeviceEvent::Send { bytes, .. }) => {
                    out.extend_from_slice(bytes);
                    continue;
                }
                Some(DeviceEvent::Noise { .. }) => {
                    self.noise_lines += 1;
                    continue;
                }
                _ => continue,
            };
            let response = self.execute(&request);
            out.extend_from_slice(self.session.respond(seq, &response));
            self.executed.push((seq, request, response));
        }
        out
    }

    /// What the device reports in answer to `Hello`.
    pub fn hello_info(&self) -> HelloInfo {
        HelloInfo {
            max_line: MAX_LINE as u16,
            max_chunk: MAX_CHUNK as u16,
            features: FEATURE_READ_CERT | FEATURE_OTP,
            firmware: FirmwareVersion {
                major: 0,
                minor: 1,
                patch: 0,
            },
            chip: ChipInfo {
                revision: [0, 0, 0x60, 0x02],
                serial: SERIAL,
                config_locked: self.config_locked,
                data_locked: self.data_locked,
                slot_locked: self.slot_locked,
            },
            def_blob: match (self.blob_complete, self.blob_name) {
                (true, Some((len, digest))) => Some(DefBlobId { len, digest }),
                _ => None,
            },
            protocol: PROTOCOL_VERSION,
            lifecycle: if !self.config_locked {
                Lifecycle::Factory
            } else if self.data_locked && self.slot_locked & (1 << 11) != 0 {
                Lifecycle::Locked
            } else {
                Lifecycle::Provisioning
            },
            blob_untrusted: false,
            maintenance: false,
            platform: PlatformSecurity::UNKNOWN,
        }
    }

    fn err(code: ErrorCode, detail: &str) -> Response {
        Response::Error(WireError::new(code, detail))
    }

    pub fn execute(&mut self, request: &Request) -> Response {
        match request {
            Request::Hello => Response::Hello(self.hello_info()),
            Request::ReadConfig => Response::Config(self.config.iter().copied().collect()),
            Request::WriteConfig { offset, data } => {
                if self.config_locked {
                    return Self::err(ErrorCode::Locked, "config zone locked");
                }
                for (i, b) in data.iter().enumerate() {
                    let at = *offset as usize + i;
                    if (16..84).contains(&at) || at >= 88 {
                        self.config[at] = *b;
                    }
                }
                Response::Ok
            }
            Request::LockConfig { crc } => {
                if self.config_locked {
                    Self::err(ErrorCode::Locked, "")
                } else if atecc_crc16(&self.config) != *crc {
                    Self::err(ErrorCode::ChipStatus(0x0F), "config CRC mismatch")
                } else {
                    self.config_locked = true;
                    self.config[87] = 0;
                    Response::Ok
                }
            }
            Request::GenKey { slot } => {
                if !self.config_locked {
                    return Self::err(ErrorCode::NotLocked, "config zone");
                }
                self.keys_made += 1;
                let seed = 1000 + self.keys_made * 16 + u32::from(*slot);
                Response::PublicKey(PublicKey {
                    x: arr32(seed),
                    y: arr32(seed + 500),
                })
            }
            Request::GetPublicKey { slot } => {
                let seed = 1000 + self.keys_made * 16 + u32::from(*slot);
                Response::PublicKey(PublicKey {
                    x: arr32(seed),
                    y: arr32(seed + 500),
                })
            }
            Request::ReadSlot { slot, offset, len } => {
                if !self.data_locked {
                    return Self::err(ErrorCode::ChipStatus(0x0F), "data zone unlocked");
                }
                let s = &self.slots[*slot as usize];
                Response::Data(
                    s[*offset as usize..(*offset + *len) as usize]
                        .iter()
                        .copied()
                        .collect(),
                )
            }
            Request::WriteSlot { slot, offset, data } => {
                if !self.config_locked {
                    return Self::err(ErrorCode::NotLocked, "config zone");
                }
                if self.slot_locked & (1 << slot) != 0 {
                    return Self::err(ErrorCode::Locked, "slot locked");
                }
                let o = *offset as usize;
                self.slots[*slot as usize][o..o + data.len()].copy_from_slice(data);
                Response::Ok
            }
            Request::ReadOtp { .. } => Response::Data(HVec::new()),
            Request::WriteOtp { .. } => Response::Ok,
            Request::LockData { .. } => {
                if self.data_locked {
                    Self::err(ErrorCode::Locked, "")
                } else if !self.config_locked {
                    Self::err(ErrorCode::NotLocked, "config zone")
                } else {
                    self.data_locked = true;
                    Response::Ok
                }
            }
            Request::LockSlot { slot } => {
                if self.slot_locked & (1 << slot) != 0 {
                    return Self::err(ErrorCode::Locked, "");
                }
                self.slot_locked |= 1 << slot;
                Response::Ok
            }
            Request::StoreDefBlob {
                total_len,
                digest,
                offset,
                data,
                ..
            } => {
                if self.blob_name != Some((*total_len, *digest)) {
                    self.blob_name = Some((*total_len, *digest));
                    self.blob.clear();
                    self.blob_complete = false;
                }
                if !data.is_empty() && *offset as usize == self.blob.len() && !self.blob_complete {
                    self.blob.extend_from_slice(data);
                    if self.blob.len() == *total_len as usize {
                        if Sha256::digest(&self.blob).as_slice() != digest {
                            self.blob.clear();
                            self.blob_name = None;
                            return Self::err(ErrorCode::DigestMismatch, "");
                        }
                        self.blob_complete = true;
                    }
                }
                Response::DefBlob(DefBlobProgress {
                    received: self.blob.len() as u32,
                    total_len: *total_len,
                    complete: self.blob_complete,
                })
            }
            Request::RebuildChain => {
                if !self.blob_complete {
                    return Self::err(ErrorCode::NoBlob, "");
                }
                let (dev, signer) = self.certs();
                Response::Chain(ChainReport {
                    device: CertSummary {
                        len: dev.len() as u16,
                        digest: Sha256::digest(&dev).into(),
                    },
                    signer: CertSummary {
                        len: signer.len() as u16,
                        digest: Sha256::digest(&signer).into(),
                    },
                })
            }
            Request::ReadCert { cert, offset, len } => {
                let (dev, signer) = self.certs();
                let der = if *cert == CertKind::Device {
                    dev
                } else {
                    signer
                };
                let start = (*offset as usize).min(der.len());
                let end = (start + *len as usize).min(der.len());
                Response::CertChunk(CertChunk {
                    total_len: der.len() as u16,
                    offset: *offset,
                    data: der[start..end].iter().copied().collect(),
                })
            }
            Request::IdentityProof { host_nonce } => {
                let seed = u32::from_le_bytes(host_nonce[..4].try_into().unwrap());
                Response::IdentityProof(IdentityProof {
                    device_nonce: arr32(seed ^ 0x5A5A),
                    signature: Signature {
                        r: arr32(seed),
                        s: arr32(seed ^ 0xFFFF),
                    },
                })
            }
            Request::MaintenanceBegin => Response::MaintenanceNonce(arr32(55)),
            Request::MaintenanceAuth { .. } => Self::err(ErrorCode::AuthFailed, ""),
            Request::StoreIoKey { .. } => Response::Ok,
            Request::Random => Response::Random(arr32(self.executed.len() as u32 + 77)),
            Request::SetBaud { .. } => Self::err(ErrorCode::Unsupported, "fixed baud"),
            Request::Finish { .. } => Response::Ok,
        }
    }

    /// Stand-ins for the rebuilt certificates: derived from the written slots.
    fn certs(&self) -> (Vec<u8>, Vec<u8>) {
        let mut dev = filler(u32::from(self.slots[10][0]) + 300, 520);
        dev[..72].copy_from_slice(&self.slots[10][..72]);
        let mut signer = filler(u32::from(self.slots[12][0]) + 400, 540);
        signer[..72].copy_from_slice(&self.slots[12][..72]);
        (dev, signer)
    }
}

/// The whole provisioning flow of docs/protocol.md §8, with `chunk`-byte blob chunks. Blob
/// chunks assume the upload starts from empty (the flow's status query confirms it).
pub fn provisioning_flow(chunk: usize) -> Vec<Request> {
    let config = target_config();
    let blob = blob(1024);
    let digest: [u8; 32] = Sha256::digest(&blob).into();
    let total_len = blob.len() as u32;
    let mut flow = vec![
        Request::Hello,
        Request::WriteConfig {
            offset: 16,
            data: config[16..].iter().copied().collect(),
        },
        Request::ReadConfig,
        Request::LockConfig {
            crc: atecc_crc16(&config),
        },
        Request::GenKey { slot: 0 },
        // The data lock before any certificate (decision 0004); no CRC.
        Request::LockData { crc: None },
    ];
    // The trust anchor first: the signer public key in the padded 72-byte layout (slot 11).
    let mut padded = vec![0u8; 72];
    padded[4..36].copy_from_slice(&arr32(11));
    padded[40..72].copy_from_slice(&arr32(12));
    flow.push(Request::WriteSlot {
        slot: 11,
        offset: 0,
        data: padded.into_iter().collect(),
    });
    // The blob, signed by the signer (the device checks it against slot 11).
    let signature = Signature {
        r: arr32(31),
        s: arr32(32),
    };
    flow.push(Request::StoreDefBlob {
        total_len,
        digest,
        signature,
        offset: 0,
        data: HVec::new(),
    });
    for (i, part) in blob.chunks(chunk).enumerate() {
        flow.push(Request::StoreDefBlob {
            total_len,
            digest,
            signature,
            offset: (i * chunk) as u32,
            data: part.iter().copied().collect(),
        });
    }
    // Device compressed cert (slot 10), signer compressed cert (slot 12).
    for (slot, data) in [(10u8, filler(10, 72)), (12, filler(12, 72))] {
        flow.push(Request::WriteSlot {
            slot,
            offset: 0,
            data: data.into_iter().collect(),
        });
    }
    flow.extend([
        Request::RebuildChain,
        Request::IdentityProof {
            host_nonce: arr32(99),
        },
        Request::LockSlot { slot: 10 },
        Request::LockSlot { slot: 11 },
        Request::LockSlot { slot: 12 },
        Request::Finish { reboot: true },
    ]);
    flow
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn short(b: &[u8]) -> String {
    if b.len() <= 8 {
        hex(b)
    } else {
        format!("{}…", hex(&b[..6]))
    }
}

pub fn describe_request(r: &Request) -> String {
    match r {
        Request::WriteConfig { offset, data } => {
            format!("WriteConfig offset {offset}, {} bytes", data.len())
        }
        Request::LockConfig { crc } => format!("LockConfig crc 0x{crc:04X}"),
        Request::GenKey { slot } => format!("GenKey slot {slot}"),
        Request::WriteSlot { slot, offset, data } => {
            format!(
                "WriteSlot slot {slot}, offset {offset}, {} bytes",
                data.len()
            )
        }
        Request::LockData { crc } => format!("LockData crc {crc:04X?}"),
        Request::StoreDefBlob {
            total_len,
            digest,
            offset,
            data,
            ..
        } if data.is_empty() => format!(
            "StoreDefBlob status query: total {total_len}, sha256 {}",
            short(digest)
        ),
        Request::StoreDefBlob { offset, data, .. } => {
            format!("StoreDefBlob offset {offset}, {} bytes", data.len())
        }
        Request::IdentityProof { host_nonce } => {
            format!("IdentityProof host nonce {}", short(host_nonce))
        }
        Request::LockSlot { slot } => format!("LockSlot slot {slot}"),
        Request::Finish { reboot } => format!("Finish reboot={reboot}"),
        other => other.name().to_string(),
    }
}

pub fn describe_response(r: &Response) -> String {
    match r {
        Response::Hello(h) => format!(
            "Hello: max_line {}, max_chunk {}, fw {}.{}.{}, rev {}, serial {}, config_locked {}, \
             data_locked {}, slot_locked 0x{:04X}, def_blob {}",
            h.max_line,
            h.max_chunk,
            h.firmware.major,
            h.firmware.minor,
            h.firmware.patch,
            hex(&h.chip.revision),
            hex(&h.chip.serial),
            h.chip.config_locked,
            h.chip.data_locked,
            h.chip.slot_locked,
            if h.def_blob.is_some() {
                "stored"
            } else {
                "none"
            }
        ),
        Response::Config(c) => format!("Config: {} bytes, starts {}", c.len(), short(c)),
        Response::PublicKey(k) => format!("PublicKey x {} y {}", short(&k.x), short(&k.y)),
        Response::DefBlob(p) => format!(
            "DefBlob received {}/{}, complete {}",
            p.received, p.total_len, p.complete
        ),
        Response::Chain(c) => format!(
            "Chain: device {} B sha256 {}, signer {} B sha256 {}",
            c.device.len,
            short(&c.device.digest),
            c.signer.len,
            short(&c.signer.digest)
        ),
        Response::IdentityProof(p) => format!(
            "IdentityProof device nonce {} r {} s {}",
            short(&p.device_nonce),
            short(&p.signature.r),
            short(&p.signature.s)
        ),
        Response::Error(e) => format!("Error {:?} {:?}", e.code, e.detail.as_str()),
        other => other.name().to_string(),
    }
}

/// Runs the flow over a clean link and renders the transcript block of docs/protocol.md:
/// `# n. what` comments, `>` host lines, `<` device lines. Returns the text and the bytes
/// (host → device, device → host) on the wire.
pub fn render_transcript(chunk: usize, first_seq: u16) -> (String, usize, usize) {
    let mut host = HostSession::new(RetryPolicy::default(), first_seq);
    let mut dev = FakeDevice::new();
    let mut text = String::new();
    let (mut up, mut down) = (0, 0);
    for (i, request) in provisioning_flow(chunk).iter().enumerate() {
        let line = host.send(request, 0).unwrap().to_vec();
        let reply = dev.handle(&line);
        up += line.len();
        down += reply.len();
        let (used, ev) = host.feed(&reply);
        assert_eq!(used, reply.len());
        let Some(HostEvent::Response { response, .. }) = ev else {
            panic!("no answer: {ev:?}")
        };
        text += &format!("# {}. {}\n", i + 1, describe_request(request));
        text += &format!("> {}", String::from_utf8(line).unwrap());
        text += &format!("#    → {}\n", describe_response(&response));
        text += &format!("< {}", String::from_utf8(reply).unwrap());
    }
    (text, up, down)
}
