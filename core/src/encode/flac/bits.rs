//! The bit writer (MSB first, as FLAC stores everything) and the two CRCs of a frame.

/// Bits appended most significant first into a byte vector.
pub(super) struct BitWriter {
    bytes: Vec<u8>,
    /// Pending bits, right-aligned; `filled` of them are valid (always fewer than 32 between
    /// calls).
    acc: u64,
    filled: u32,
}

impl BitWriter {
    pub(super) fn new() -> BitWriter {
        BitWriter {
            bytes: Vec::new(),
            acc: 0,
            filled: 0,
        }
    }

    /// Forget everything written (keeps the allocation).
    pub(super) fn clear(&mut self) {
        self.bytes.clear();
        self.acc = 0;
        self.filled = 0;
    }

    /// The low `n` bits of `v` (`n` ≤ 32; higher bits of `v` must be zero).
    #[inline(always)]
    pub(super) fn put(&mut self, n: u32, v: u32) {
        debug_assert!(n <= 32 && (n == 32 || v >> n == 0));
        // `filled` < 32, so `filled + n` ≤ 63 bits stay in the accumulator.
        self.acc = (self.acc << n) | u64::from(v);
        self.filled += n;
        if self.filled >= 32 {
            self.filled -= 32;
            let word = (self.acc >> self.filled) as u32;
            self.bytes.extend_from_slice(&word.to_be_bytes());
        }
    }

    /// The low `n` bits of a signed value in two's complement (`n` ≤ 32).
    #[inline(always)]
    pub(super) fn put_signed(&mut self, n: u32, v: i32) {
        let mask = if n >= 32 { u32::MAX } else { (1u32 << n) - 1 };
        self.put(n, (v as u32) & mask);
    }

    /// `n` zero bits, any count.
    pub(super) fn put_zeros(&mut self, mut n: u32) {
        while n > 32 {
            self.put(32, 0);
            n -= 32;
        }
        self.put(n, 0);
    }

    /// A Rice code of the zig-zag folded value `u` with parameter `k` (≤ 30): the quotient in
    /// unary (zeros closed by a one), then the `k` low bits.
    #[inline(always)]
    pub(super) fn put_rice(&mut self, k: u32, u: u32) {
        let q = u >> k;
        if q + k < 32 {
            // One put: q zeros, the stop bit, k bits.
            let low = u & ((1u32 << k) - 1);
            self.put(q + 1 + k, (1u32 << k) | low);
        } else {
            self.put_zeros(q);
            let low = if k == 0 {
                0
            } else {
                u & (u32::MAX >> (32 - k))
            };
            self.put(1, 1);
            self.put(k, low);
        }
    }

    /// Pad with zeros to a byte boundary.
    pub(super) fn align(&mut self) {
        let pad = (8 - self.filled % 8) % 8;
        self.put(pad, 0);
        // Flush whole bytes out of the accumulator.
        while self.filled >= 8 {
            self.filled -= 8;
            self.bytes.push((self.acc >> self.filled) as u8);
        }
    }

    /// The bytes written; only complete after [`BitWriter::align`].
    pub(super) fn bytes(&self) -> &[u8] {
        debug_assert_eq!(self.filled, 0);
        &self.bytes
    }

    pub(super) fn push_bytes(&mut self, b: &[u8]) {
        debug_assert_eq!(self.filled, 0);
        self.bytes.extend_from_slice(b);
    }
}

const fn crc8_table() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u8;
        let mut b = 0;
        while b < 8 {
            c = if c & 0x80 != 0 {
                (c << 1) ^ 0x07
            } else {
                c << 1
            };
            b += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

/// Slice-by-4 tables of CRC-16 (polynomial 0x8005, MSB first, initial value 0).
const fn crc16_tables() -> [[u16; 256]; 4] {
    let mut t = [[0u16; 256]; 4];
    let mut i = 0;
    while i < 256 {
        let mut c = (i as u16) << 8;
        let mut b = 0;
        while b < 8 {
            c = if c & 0x8000 != 0 {
                (c << 1) ^ 0x8005
            } else {
                c << 1
            };
            b += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut k = 1;
    while k < 4 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = (prev << 8) ^ t[0][(prev >> 8) as usize];
            i += 1;
        }
        k += 1;
    }
    t
}

static CRC8: [u8; 256] = crc8_table();
static CRC16: [[u16; 256]; 4] = crc16_tables();

/// CRC-8 of a frame header (polynomial x^8 + x^2 + x + 1).
pub(super) fn crc8(data: &[u8]) -> u8 {
    data.iter().fold(0u8, |c, &b| CRC8[usize::from(c ^ b)])
}

/// CRC-16 of a frame (polynomial x^16 + x^15 + x^2 + 1).
pub(super) fn crc16(data: &[u8]) -> u16 {
    let mut c = 0u16;
    let mut chunks = data.chunks_exact(4);
    for w in &mut chunks {
        let x = (u32::from(c) << 16) ^ u32::from_be_bytes([w[0], w[1], w[2], w[3]]);
        c = CRC16[3][(x >> 24) as usize]
            ^ CRC16[2][((x >> 16) & 0xff) as usize]
            ^ CRC16[1][((x >> 8) & 0xff) as usize]
            ^ CRC16[0][(x & 0xff) as usize];
    }
    for &b in chunks.remainder() {
        c = (c << 8) ^ CRC16[0][usize::from((c >> 8) as u8 ^ b)];
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crc16_bitwise(data: &[u8]) -> u16 {
        let mut c = 0u16;
        for &b in data {
            c ^= u16::from(b) << 8;
            for _ in 0..8 {
                c = if c & 0x8000 != 0 {
                    (c << 1) ^ 0x8005
                } else {
                    c << 1
                };
            }
        }
        c
    }

    #[test]
    fn crcs_match_the_bitwise_definitions_and_known_values() {
        // CRC-8/SMBUS and CRC-16/UMTS (= FLAC's) of "123456789".
        assert_eq!(crc8(b"123456789"), 0xF4);
        assert_eq!(crc16(b"123456789"), 0xFEE8);
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7919 % 251) as u8).collect();
        for n in 0..40 {
            assert_eq!(crc16(&data[..n]), crc16_bitwise(&data[..n]), "{n} bytes");
        }
        assert_eq!(crc16(&data), crc16_bitwise(&data));
    }

    #[test]
    fn bits_pack_msb_first() {
        let mut w = BitWriter::new();
        w.put(1, 1);
        w.put(3, 0b010);
        w.put_signed(4, -1);
        w.put(32, 0xDEAD_BEEF);
        w.put_rice(2, 9); // q = 2: 001, low 01
        w.put_rice(0, 40); // 40 zeros then a one
        w.put_signed(32, i32::MIN);
        w.align();
        let mut want = String::from("10101111");
        want += &format!("{:032b}", 0xDEAD_BEEFu32);
        want += "00101";
        want += &"0".repeat(40);
        want += "1";
        want += &format!("{:032b}", i32::MIN as u32);
        while want.len() % 8 != 0 {
            want.push('0');
        }
        let got: String = w.bytes().iter().map(|b| format!("{b:08b}")).collect();
        assert_eq!(got, want);
    }
}
