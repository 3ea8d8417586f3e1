//! The fast, exact decoder for the float arrays in request bodies (`/predict`'s `signal`,
//! `/predict/batch`'s `signals`, OIP JSON `data`).
//!
//! # Why a purpose-built scanner
//!
//! A `/predict` record is 102400 numbers in ~1 MB of JSON. Decoding it through serde_json's
//! generic machinery (a visitor call and a `Vec` push per element, its own float routine) cost
//! ~4.4 ms per record inside the wasm guest — more than the model. The numbers sit in the
//! simplest JSON there is, `[number, number, …]`, so a scanner for exactly that grammar, writing
//! straight into a pre-sized `Vec<f32>`, does the same work in a fraction of the time.
//!
//! # Exactness
//!
//! Each number is parsed as an `f64`, correctly rounded — by Clinger's exact fast path for
//! plain decimals with an exact significand (every six-decimal sample), otherwise by
//! `fast-float2`, the Rust port of Lemire's fast_float, which validates against the same
//! exhaustive test suites as the C++ original — then rounded to `f32` — exactly what pydantic + NumPy (`float(token)` then
//! `np.float32`) and serde_json with `float_roundtrip` do. The JSON number grammar
//! (RFC 8259 §6) is checked here, byte by byte, before the slice is handed to the parser, so the
//! parser's extensions (`inf`, `nan`, `+1`, `.5`, `1.`) are never accepted.
//!
//! # Why the loop stays byte-wise between numbers
//!
//! Two rewrites were measured and dropped: parsing each sample from whole 8-byte words (integer
//! part, dot and fraction found by SWAR masks), and finding every comma first (memchr) and
//! parsing the samples between them. Both executed fewer or similar instructions and ran slower
//! (natively 0.97 → 1.17–1.30 ms per 102400-value record, in wasm 1.20 → 1.54 ms): there, where a
//! sample ends comes out of arithmetic on its bytes, so the next sample waits for it; here it
//! comes out of predicted branches, and the CPU runs ahead.
//!
//! # Fast path only
//!
//! The scanner answers `None` for anything outside the narrow grammar it knows (strings,
//! objects, escapes, duplicate or unknown keys, numbers beyond `f64`, integers too long to be
//! exact): the caller then runs the general serde path, which either accepts the input or
//! explains every wrong field in pydantic's terms. So the fast path can only make a success
//! faster; it never changes what is accepted or how an error reads.

/// A cursor over a JSON text.
pub struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

/// Deepest list nesting accepted in OIP `data` (a `[batch, 1, length]` tensor nests 3 deep).
const MAX_DEPTH: usize = 8;

impl<'a> Scanner<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Scanner { bytes, pos: 0 }
    }

    /// Skips JSON whitespace.
    #[inline]
    pub fn ws(&mut self) {
        self.pos = skip_ws(self.bytes, self.pos);
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Consumes `c` (after whitespace) if it is next.
    #[inline]
    pub fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Whether only whitespace is left.
    pub fn at_end(&mut self) -> bool {
        self.ws();
        self.pos == self.bytes.len()
    }

    /// A string without escapes (object keys): its raw bytes.
    pub fn plain_string(&mut self) -> Option<&'a [u8]> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.pos;
        let len = self.bytes[start..]
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
        if self.bytes[start + len] != b'"' {
            return None;
        }
        self.pos = start + len + 1;
        Some(&self.bytes[start..start + len])
    }

    /// `true` or `false`.
    pub fn boolean(&mut self) -> Option<bool> {
        self.ws();
        for (word, value) in [(&b"true"[..], true), (&b"false"[..], false)] {
            if self.bytes[self.pos..].starts_with(word) {
                self.pos += word.len();
                return Some(value);
            }
        }
        None
    }

    /// `null` (→ `Some(None)`) or an integer within `i64` (→ `Some(Some(n))`).
    pub fn optional_integer(&mut self) -> Option<Option<i64>> {
        self.ws();
        if self.bytes[self.pos..].starts_with(b"null") {
            self.pos += 4;
            return Some(None);
        }
        let token = self.number_token()?;
        if !token.integer {
            return None;
        }
        std::str::from_utf8(&self.bytes[token.start..token.end])
            .ok()?
            .parse()
            .ok()
            .map(Some)
    }

    /// One JSON number, as `f64` correctly rounded and then rounded to `f32`.
    #[inline(always)]
    pub fn number_f32(&mut self) -> Option<f32> {
        let (v, end) = number_at(self.bytes, skip_ws(self.bytes, self.pos))?;
        self.pos = end;
        Some(v)
    }

    /// Any number `plain_decimal` leaves: exponents, long significands, what is not JSON
    /// (→ `None`).
    fn general_number_f32(&mut self) -> Option<f32> {
        let token = self.number_token()?;
        let value = match token.exact_f64() {
            Some(v) => v,
            // Integers beyond 2^53: serde_json rounds them from u64/i64 straight to f32, which
            // can differ from rounding through f64; left to serde so its answer stands.
            None if token.integer => return None,
            None => fast_float2::parse(&self.bytes[token.start..token.end]).ok()?,
        };
        // serde_json refuses numbers beyond f64 ("number out of range"); so does the slow path.
        if value.is_infinite() {
            return None;
        }
        Some(value as f32)
    }

    /// Reads a JSON number at the cursor and moves past it:
    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, collecting its decimal
    /// significand and exponent on the way.
    #[inline]
    fn number_token(&mut self) -> Option<Token> {
        let b = self.bytes;
        let start = self.pos;
        let mut i = start;
        let negative = b.get(i) == Some(&b'-');
        i += usize::from(negative);
        let mut significand: u64 = 0;
        let mut digits = 0usize;
        match b.get(i) {
            Some(b'0') => {
                i += 1;
                digits = 1;
            }
            Some(b'1'..=b'9') => i = digit_run(b, i, &mut significand, &mut digits),
            _ => return None,
        }
        let mut integer = true;
        let mut exponent: i64 = 0;
        if b.get(i) == Some(&b'.') {
            integer = false;
            i += 1;
            let first = i;
            i = digit_run(b, i, &mut significand, &mut digits);
            if i == first {
                return None;
            }
            exponent -= (i - first) as i64;
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            integer = false;
            i += 1;
            let sign = match b.get(i) {
                Some(b'-') => {
                    i += 1;
                    -1
                }
                Some(b'+') => {
                    i += 1;
                    1
                }
                _ => 1,
            };
            let first = i;
            let mut e: i64 = 0;
            while let Some(&d @ b'0'..=b'9') = b.get(i) {
                e = (e * 10 + i64::from(d - b'0')).min(1 << 32);
                i += 1;
            }
            if i == first {
                return None;
            }
            exponent += sign * e;
        }
        self.pos = i;
        Some(Token {
            start,
            end: i,
            negative,
            integer,
            significand,
            digits,
            exponent,
        })
    }

    /// A flat list of numbers, `[n, n, …]`, appended to `out`.
    pub fn f32_array(&mut self, out: &mut Vec<f32>) -> Option<()> {
        if !self.eat(b'[') {
            return None;
        }
        if self.eat(b']') {
            return Some(());
        }
        let b = self.bytes;
        let mut i = self.pos;
        // The hot loop: one sample per turn, the cursor in a local.
        while array_element(b, &mut i, out)? {}
        self.pos = i;
        Some(())
    }

    /// After a list element: `,` → `Some(true)`, `]` → `Some(false)` (both consumed), anything
    /// else → `None`.
    fn list_continues(&mut self) -> Option<bool> {
        self.ws();
        let more = match self.peek()? {
            b',' => true,
            b']' => false,
            _ => return None,
        };
        self.pos += 1;
        Some(more)
    }

    /// A list of flat number lists, `[[n, …], [n, …], …]`, each pre-sized to `capacity`.
    pub fn f32_arrays(&mut self, capacity: usize) -> Option<Vec<Vec<f32>>> {
        if !self.eat(b'[') {
            return None;
        }
        let mut lists = Vec::new();
        if self.eat(b']') {
            return Some(lists);
        }
        loop {
            let mut list = Vec::with_capacity(capacity);
            self.f32_array(&mut list)?;
            lists.push(list);
            if !self.list_continues()? {
                return Some(lists);
            }
        }
    }

    /// A number or a (nested) list of numbers, flattened row-major into `out` — OIP's `data`,
    /// which may be flat or shaped like the tensor.
    pub fn f32_nested(&mut self, out: &mut Vec<f32>) -> Option<()> {
        self.f32_nested_at(out, 0)
    }

    fn f32_nested_at(&mut self, out: &mut Vec<f32>, depth: usize) -> Option<()> {
        self.ws();
        if self.peek()? != b'[' {
            out.push(self.number_f32()?);
            return Some(());
        }
        if depth == MAX_DEPTH {
            return None;
        }
        self.pos += 1;
        if self.eat(b']') {
            return Some(());
        }
        loop {
            self.ws();
            match self.peek()? {
                b'[' => self.f32_nested_at(out, depth + 1)?,
                _ => out.push(self.number_f32()?),
            }
            if !self.list_continues()? {
                return Some(());
            }
        }
    }
}

/// One element of a flat number list at `*i` and what follows it: pushes the number, moves `*i`
/// past its `,` (→ `Some(true)`) or the closing `]` (→ `Some(false)`); `None` for anything else.
#[inline(always)]
fn array_element(b: &[u8], i: &mut usize, out: &mut Vec<f32>) -> Option<bool> {
    let (v, end) = number_at(b, skip_ws(b, *i))?;
    out.push(v);
    let at = skip_ws(b, end);
    let more = match b.get(at)? {
        b',' => true,
        b']' => false,
        _ => return None,
    };
    *i = at + 1;
    Some(more)
}

/// One JSON number at `i` (no whitespace before it), as `f32`, and the index after it.
/// Plain decimals — every six-decimal sample — take `plain_decimal` without building a token
/// (36 % fewer instructions per `/predict` record than the general reader, callgrind); the
/// general reader is out of line so this stays small enough to inline into the list loops.
#[inline(always)]
fn number_at(b: &[u8], i: usize) -> Option<(f32, usize)> {
    if let Some((v, end)) = plain_decimal(b, i) {
        return Some((v as f32, end));
    }
    general_number_at(b, i)
}

#[inline(never)]
fn general_number_at(b: &[u8], i: usize) -> Option<(f32, usize)> {
    let mut s = Scanner { bytes: b, pos: i };
    let v = s.general_number_f32()?;
    Some((v, s.pos))
}

/// Skips JSON whitespace from `i`.
#[inline(always)]
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = b.get(i) {
        i += 1;
    }
    i
}

/// The common sample, `-?(0|[1-9][0-9]*)(\.[0-9]+)?` with at most 19 digits and an exact
/// significand, as a correctly rounded `f64` (Clinger's fast path, see [`Token::exact_f64`]) and
/// the index after it. `None` sends the token to the general reader, which also rejects what is
/// not JSON (`01`, `1.`, …).
#[inline(always)]
fn plain_decimal(b: &[u8], start: usize) -> Option<(f64, usize)> {
    let mut i = start;
    let negative = b.get(i) == Some(&b'-');
    i += usize::from(negative);
    let mut significand = 0u64;
    let mut digits = 0usize;
    let first = *b.get(i)?;
    if first == b'0' {
        i += 1;
        digits = 1;
        if matches!(b.get(i), Some(b'0'..=b'9')) {
            return None;
        }
    } else if first.wrapping_sub(b'1') < 9 {
        i = digit_run(b, i, &mut significand, &mut digits);
    } else {
        return None;
    }
    let mut fraction = 0usize;
    if b.get(i) == Some(&b'.') {
        let first = i + 1;
        i = digit_run(b, first, &mut significand, &mut digits);
        fraction = i - first;
        if fraction == 0 {
            return None;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E'))
        || digits > 19
        || significand > 1 << 53
        || fraction > 22
    {
        return None;
    }
    let m = significand as f64;
    let v = if fraction == 0 {
        m
    } else {
        m / EXACT_POWERS_OF_TEN[fraction]
    };
    Some((if negative { -v } else { v }, i))
}

/// Reads the run of decimal digits at `i` into `significand` (× 10 per digit) and `digits`;
/// returns the index after the run.
///
/// Why eight at a time: a sample is a handful of digits, and a byte-at-a-time loop spends a
/// compare and a branch per byte. With eight bytes loaded as one little-endian `u64`, a few
/// integer operations (SWAR) find where the digits stop and convert up to eight of them at once
/// — the technique of simdjson and fast_float, in plain integer arithmetic that compiles to the
/// same code natively and in wasm32.
///
/// Why the first word is read before (not inside) the loop: inside a wasm guest served with
/// epoch interruption (pfd-host, Spin) every loop iteration also checks the epoch, and a
/// sample's digits almost always end within its first word: straight-line code for that case
/// took the decoder of the bench's reference-vector `/predict` body from 1.55–1.69 to
/// 1.40–1.46 ms per record under wasmtime with epoch interruption, natively 0.84–0.88 →
/// 0.88–0.91 ms (`DECODE_BENCH_BODY=… scripts/wasm-example.sh pfd-core decode_bench`, with
/// `-W timeout=100s`). Also tried: the `, ` between samples without `skip_ws`'s loop (no gain
/// in the guest, natively 25 % slower: the cursor then waits on a select), two samples per turn
/// of the list loop (no difference).
#[inline(always)]
fn digit_run(b: &[u8], mut i: usize, significand: &mut u64, digits: &mut usize) -> usize {
    if i + 8 <= b.len() {
        let n = digit_word(b, i, significand, digits);
        if n < 8 {
            return i + n;
        }
        i += 8;
        while i + 8 <= b.len() {
            let n = digit_word(b, i, significand, digits);
            i += n;
            if n < 8 {
                return i;
            }
        }
    }
    while let Some(&d @ b'0'..=b'9') = b.get(i) {
        // Past 19 digits the significand may wrap; `digits` then sends the token to the
        // general parser, so the value kept here no longer matters.
        *significand = significand
            .wrapping_mul(10)
            .wrapping_add(u64::from(d - b'0'));
        *digits += 1;
        i += 1;
    }
    i
}

/// Reads the digits among the eight bytes at `i` (which must exist) into `significand` and
/// `digits`; returns how many there were before the first non-digit (8: all of them).
#[inline(always)]
fn digit_word(b: &[u8], i: usize, significand: &mut u64, digits: &mut usize) -> usize {
    let chunk: [u8; 8] = b[i..i + 8].try_into().unwrap();
    let x = u64::from_le_bytes(chunk) ^ 0x3030_3030_3030_3030;
    // A byte is a digit iff x's byte is < 10: adding 0x76 to its low 7 bits sets the top bit
    // otherwise (no carry between bytes: 0x7f + 0x76 < 0x100), and bytes ≥ 0x80 already have it.
    let not_digit = ((x & 0x7f7f_7f7f_7f7f_7f7f).wrapping_add(0x7676_7676_7676_7676) | x)
        & 0x8080_8080_8080_8080;
    let n = (not_digit.trailing_zeros() / 8) as usize; // 8 when all are digits
    if n == 0 {
        return 0;
    }
    // Keep the first n bytes, moved to the top so the dropped ones become leading zeros.
    let kept = if n == 8 { x } else { x << (64 - 8 * n) };
    *significand = significand
        .wrapping_mul(POWERS_OF_TEN_U64[n])
        .wrapping_add(eight_digits(kept));
    *digits += n;
    n
}

/// The value of eight decimal digits held one per byte (0–9, first digit in the lowest byte).
#[inline]
fn eight_digits(x: u64) -> u64 {
    let x = (x & 0x0f0f_0f0f_0f0f_0f0f).wrapping_mul(2561) >> 8;
    let x = (x & 0x00ff_00ff_00ff_00ff).wrapping_mul(6_553_601) >> 16;
    (x & 0x0000_ffff_0000_ffff).wrapping_mul(42_949_672_960_001) >> 32
}

static POWERS_OF_TEN_U64: [u64; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// A number token: its extent and its decimal parts.
struct Token {
    start: usize,
    end: usize,
    negative: bool,
    integer: bool,
    /// The decimal digits as an integer (meaningful while `digits` ≤ 19).
    significand: u64,
    /// How many decimal digits the significand has (leading zeros included).
    digits: usize,
    /// The power of ten the significand is scaled by.
    exponent: i64,
}

/// Powers of ten exactly representable as `f64` (10^22 is the largest).
static EXACT_POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

impl Token {
    /// Clinger's fast path: when the significand (≤ 2^53) and the power of ten (|e| ≤ 22) are
    /// both exact `f64`s, one IEEE multiplication or division rounds their product correctly.
    /// Six-decimal samples always land here; anything else takes the general parser.
    #[inline]
    fn exact_f64(&self) -> Option<f64> {
        if self.digits > 19 || self.significand > 1 << 53 || self.exponent.abs() > 22 {
            return None;
        }
        let m = self.significand as f64;
        let p = EXACT_POWERS_OF_TEN[self.exponent.unsigned_abs() as usize];
        let v = if self.exponent < 0 { m / p } else { m * p };
        Some(if self.negative { -v } else { v })
    }
}

/// Decodes a whole JSON text that is a (nested) list of numbers, flattened; `None` when it is
/// anything else.
pub fn parse_nested_f32(text: &[u8], capacity: usize) -> Option<Vec<f32>> {
    let mut scanner = Scanner::new(text);
    let mut out = Vec::with_capacity(capacity);
    scanner.f32_nested(&mut out)?;
    scanner.at_end().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference semantics: Rust's own correctly rounded `f64` parser, then `as f32`.
    fn reference(token: &str) -> f32 {
        token.parse::<f64>().unwrap() as f32
    }

    fn one(token: &str) -> Option<f32> {
        let mut s = Scanner::new(token.as_bytes());
        let v = s.number_f32()?;
        s.at_end().then_some(v)
    }

    /// A small deterministic generator (xorshift64*), so failures reproduce from the seed.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn random_decimal(rng: &mut Rng) -> String {
        let mut s = String::new();
        if rng.below(2) == 0 {
            s.push('-');
        }
        let int_digits = rng.below(12) as usize;
        if int_digits == 0 {
            s.push('0');
        } else {
            s.push(char::from(b'1' + rng.below(9) as u8));
            for _ in 1..int_digits {
                s.push(char::from(b'0' + rng.below(10) as u8));
            }
        }
        let frac_digits = rng.below(26) as usize;
        if frac_digits > 0 || int_digits > 15 {
            s.push('.');
            for _ in 0..frac_digits.max(1) {
                s.push(char::from(b'0' + rng.below(10) as u8));
            }
        }
        if rng.below(3) == 0 {
            s.push(if rng.below(2) == 0 { 'e' } else { 'E' });
            match rng.below(3) {
                0 => s.push('-'),
                1 => s.push('+'),
                _ => {}
            }
            s.push_str(&rng.below(330).to_string());
        }
        s
    }

    #[test]
    fn random_decimals_match_f64_then_f32() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut checked = 0;
        for _ in 0..200_000 {
            let token = random_decimal(&mut rng);
            let want = token.parse::<f64>().unwrap();
            match one(&token) {
                Some(got) => {
                    assert_eq!(got.to_bits(), (want as f32).to_bits(), "{token}");
                    checked += 1;
                }
                // Only numbers beyond f64 are left to the slow path here.
                None => assert!(want.is_infinite(), "{token} refused"),
            }
        }
        assert!(checked > 150_000, "{checked}");
    }

    #[test]
    fn f32_round_trips_and_halfway_cases() {
        let mut rng = Rng(42);
        for _ in 0..100_000 {
            let x = f32::from_bits(rng.next() as u32);
            if !x.is_finite() {
                continue;
            }
            // Shortest round-trip form (what the bench and most clients send) and a longer one.
            for token in [format!("{x:?}"), format!("{:.12e}", x as f64)] {
                assert_eq!(one(&token).unwrap().to_bits(), reference(&token).to_bits());
            }
            // The decimal halfway between x and its successor: double rounding territory.
            let next = f32::from_bits(x.to_bits() + 1);
            if next.is_finite() && x > 0.0 {
                let mid = (x as f64 + next as f64) / 2.0;
                let token = format!("{mid:.17e}");
                assert_eq!(one(&token).unwrap().to_bits(), reference(&token).to_bits());
            }
        }
    }

    #[test]
    fn json_grammar_only() {
        for bad in [
            "", "-", "+1", ".5", "1.", "1e", "1e+", "01", "-01", "inf", "nan", "NaN", "Infinity",
            "0x10", "1_0", "1.5.5", "--1", "1e400", "-1e400",
        ] {
            assert_eq!(one(bad), None, "{bad:?}");
        }
        assert_eq!(one("-0").unwrap().to_bits(), (-0.0f32).to_bits());
        assert_eq!(one("0").unwrap(), 0.0);
        assert_eq!(one("1E2").unwrap(), 100.0);
        assert_eq!(one("1e-400").unwrap(), 0.0);
        assert_eq!(
            one("3.4028236e38"),
            Some(f32::INFINITY),
            "beyond f32, within f64"
        );
        // Integers up to 2^53 are exact in f64, so both roundings agree; beyond, serde decides.
        assert_eq!(one("9007199254740992").unwrap(), 9007199254740992.0);
        assert_eq!(one("9007199254740993"), None);
        assert_eq!(one("123456789012345678901"), None);
    }

    #[test]
    fn arrays() {
        let mut out = Vec::new();
        let mut s = Scanner::new(b" [ 1 ,-2.5e0,\n3 ] ");
        s.f32_array(&mut out).unwrap();
        assert!(s.at_end());
        assert_eq!(out, [1.0, -2.5, 3.0]);
        for bad in [
            &b"[1,]"[..],
            b"[,1]",
            b"[1 2]",
            b"[1,\"2\"]",
            b"[[1]]",
            b"[1",
            b"{}",
        ] {
            let mut out = Vec::new();
            assert!(Scanner::new(bad).f32_array(&mut out).is_none(), "{bad:?}");
        }
        let lists = Scanner::new(b"[[1,2],[],[3]]").f32_arrays(4).unwrap();
        assert_eq!(lists, vec![vec![1.0, 2.0], vec![], vec![3.0]]);
        assert_eq!(
            parse_nested_f32(b"[[[1, 2]], [[3], 4], 5]", 0).unwrap(),
            [1.0, 2.0, 3.0, 4.0, 5.0]
        );
        assert_eq!(parse_nested_f32(b"7", 0).unwrap(), [7.0]);
        assert!(parse_nested_f32(b"[1] x", 0).is_none());
        assert!(
            parse_nested_f32(b"[[[[[[[[[1]]]]]]]]]", 0).is_none(),
            "too deep"
        );
    }

    #[test]
    fn keys_and_scalars() {
        let mut s = Scanner::new(br#" "signal" "a\"b" "#);
        assert_eq!(s.plain_string().unwrap(), b"signal");
        assert!(s.plain_string().is_none(), "escapes go to the slow path");
        let mut s = Scanner::new(b"true false null 3 -4 2.0 1e2");
        assert_eq!(s.boolean(), Some(true));
        assert_eq!(s.boolean(), Some(false));
        assert_eq!(s.optional_integer(), Some(None));
        assert_eq!(s.optional_integer(), Some(Some(3)));
        assert_eq!(s.optional_integer(), Some(Some(-4)));
        assert_eq!(s.optional_integer(), None, "2.0 is not an integer to serde");
    }
}
