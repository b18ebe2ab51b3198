//! Boot-line output without `core::fmt`: the formatting machinery (`fmt::write`, padding,
//! integer formatting) costs about 4 KB of flash, and these few lines need none of it
//! (docs/firmware.md "Image size").

/// One output line, built in a fixed buffer and written whole (`keystamp: ...\r\n`), so the
/// host's frame reader sees it as one non-frame line. Text past the buffer is dropped.
pub struct Line {
    buf: [u8; 192],
    len: usize,
}

impl Line {
    /// A line starting with `keystamp: `.
    pub fn new() -> Self {
        let mut line = Line {
            buf: [0; 192],
            len: 0,
        };
        line.text("keystamp: ");
        line
    }

    fn byte(&mut self, b: u8) -> &mut Self {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
        self
    }

    /// Appends text.
    pub fn text(&mut self, s: &str) -> &mut Self {
        self.raw(s.as_bytes())
    }

    /// Appends bytes as they are (callers pass text without line breaks).
    fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        for b in bytes {
            self.byte(*b);
        }
        self
    }

    /// Appends certificate text: printable ASCII and UTF-8 bytes (>= 0x80) as they are; control
    /// characters (which could end the line early) and `~` (which starts a wire frame,
    /// docs/protocol.md) as `?`.
    pub fn printable(&mut self, bytes: &[u8]) -> &mut Self {
        for b in bytes {
            self.byte(if *b < 0x20 || *b == 0x7F || *b == b'~' {
                b'?'
            } else {
                *b
            });
        }
        self
    }

    /// Appends `n` in decimal.
    pub fn dec(&mut self, n: u32) -> &mut Self {
        let mut digits = [0u8; 10];
        let mut i = digits.len();
        let mut n = n;
        loop {
            i -= 1;
            if let Some(d) = digits.get_mut(i) {
                *d = b'0' + (n % 10) as u8;
            }
            n /= 10;
            if n == 0 || i == 0 {
                break;
            }
        }
        self.raw(digits.get(i..).unwrap_or_default())
    }

    /// Appends `b` as two upper-case hex digits.
    pub fn hex(&mut self, b: u8) -> &mut Self {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        self.byte(HEX[usize::from(b >> 4)])
            .byte(HEX[usize::from(b & 0x0F)])
    }

    /// Appends a digest as colon-separated upper-case hex (`AB:CD:...`), the form
    /// `openssl x509 -noout -fingerprint -sha256` prints.
    pub fn fingerprint(&mut self, digest: &[u8]) -> &mut Self {
        for (i, b) in digest.iter().enumerate() {
            if i > 0 {
                self.byte(b':');
            }
            self.hex(*b);
        }
        self
    }

    /// The finished line, with `\r\n`.
    pub fn finish(&mut self) -> &[u8] {
        // Keep room for the line end even when the text was cut.
        self.len = self.len.min(self.buf.len() - 2);
        self.raw(b"\r\n");
        self.buf.get(..self.len).unwrap_or_default()
    }
}
