//! A decoded channel's samples: f32 in memory, or 16-bit PCM read from the body as it is used.
//!
//! Why not always f32: 16-bit PCM is what nearly every handheld analyser and sound card
//! writes, and a 60 s, 48 kHz recording is 11.5 MB of f32 — memory a fresh instance of the
//! component has never touched, so each of its 2800 pages is a page fault, besides the pass
//! that writes it (the decode stage of such a request was 11 ms in pfd-host, more than a
//! third of the model's time). What reads a recording before it is resampled (the survey,
//! the resampler) reads it in blocks; [`Samples::Pcm16`] converts each block from the body's
//! bytes (half the size) into a buffer that stays in cache. The values are those of an f32
//! decode, bit for bit: `i16 · 2⁻¹⁵` is exact in f32.

use std::borrow::Cow;

/// One channel of a recording.
#[derive(Debug, Clone, PartialEq)]
pub enum Samples<'a> {
    /// f32 samples (decoded formats, floats, model windows).
    F32(Cow<'a, [f32]>),
    /// Little-endian 16-bit PCM frames of `channels` samples each, of which `channel` is this
    /// one: sample `i` is `i16 · 2⁻¹⁵` of bytes `2·(i·channels + channel)..` of `data`.
    Pcm16 {
        data: &'a [u8],
        channels: usize,
        channel: usize,
    },
}

/// Samples per block of [`Samples::for_each_block`]: 16 KiB of f32, in L1/L2 cache while a
/// pass makes several loops over it, and a multiple of the lanes' block (`crate::BLOCK`) so
/// only the last block has a remainder.
pub const READ_BLOCK: usize = 4096;

/// The value of a 16-bit PCM sample.
#[inline]
fn pcm16(b: [u8; 2]) -> f32 {
    f32::from(i16::from_le_bytes(b)) * (1.0 / 32_768.0)
}

impl<'a> From<&'a [f32]> for Samples<'a> {
    fn from(x: &'a [f32]) -> Self {
        Samples::F32(Cow::Borrowed(x))
    }
}

impl From<Vec<f32>> for Samples<'_> {
    fn from(x: Vec<f32>) -> Self {
        Samples::F32(Cow::Owned(x))
    }
}

impl<'a> Samples<'a> {
    /// Mono 16-bit PCM: each two bytes of `data` a sample.
    pub fn mono_pcm16(data: &'a [u8]) -> Self {
        Samples::Pcm16 {
            data,
            channels: 1,
            channel: 0,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Samples::F32(x) => x.len(),
            Samples::Pcm16 { data, channels, .. } => data.len() / (2 * channels),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Samples `start .. start + out.len()` into `out`. Panics past the end, like a slice.
    pub fn read(&self, start: usize, out: &mut [f32]) {
        match self {
            Samples::F32(x) => out.copy_from_slice(&x[start..start + out.len()]),
            Samples::Pcm16 {
                data, channels: 1, ..
            } => {
                let bytes = &data[2 * start..2 * (start + out.len())];
                // Eight samples per turn into the sized output: this vectorises (simd128
                // widening loads and converts); one sample per turn does not.
                let mut outs = out.chunks_exact_mut(8);
                let mut ins = bytes.chunks_exact(16);
                for (o, b) in (&mut outs).zip(&mut ins) {
                    for (j, v) in o.iter_mut().enumerate() {
                        *v = pcm16([b[2 * j], b[2 * j + 1]]);
                    }
                }
                for (v, b) in outs
                    .into_remainder()
                    .iter_mut()
                    .zip(ins.remainder().chunks_exact(2))
                {
                    *v = pcm16([b[0], b[1]]);
                }
            }
            Samples::Pcm16 {
                data,
                channels,
                channel,
            } => {
                let frame = 2 * channels;
                let frames = &data[frame * start..frame * (start + out.len())];
                for (v, f) in out.iter_mut().zip(frames.chunks_exact(frame)) {
                    *v = pcm16([f[2 * channel], f[2 * channel + 1]]);
                }
            }
        }
    }

    /// Calls `f` on the samples in order, in consecutive blocks of [`READ_BLOCK`] (the last
    /// may be shorter): f32 samples as slices of themselves, PCM converted into one buffer.
    pub fn for_each_block(&self, mut f: impl FnMut(&[f32])) {
        match self {
            Samples::F32(x) => x.chunks(READ_BLOCK).for_each(f),
            Samples::Pcm16 { .. } => {
                let mut buffer = vec![0.0f32; READ_BLOCK.min(self.len())];
                for start in (0..self.len()).step_by(READ_BLOCK) {
                    let block = &mut buffer[..READ_BLOCK.min(self.len() - start)];
                    self.read(start, block);
                    f(block);
                }
            }
        }
    }

    /// The samples as f32, in memory (owned f32 samples are moved, not copied).
    pub fn into_vec(self) -> Vec<f32> {
        match self {
            Samples::F32(x) => x.into_owned(),
            pcm => {
                let mut out = vec![0.0f32; pcm.len()];
                pcm.read(0, &mut out);
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcm_reads_every_value_exactly_in_any_block_and_channel() {
        // Every i16 value, as channel 1 of 3 and as a mono stream.
        let values: Vec<i16> = (i16::MIN..=i16::MAX).collect();
        let want: Vec<f32> = values
            .iter()
            .map(|&v| (v as f64 / 32_768.0) as f32)
            .collect();
        let mono: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let framed: Vec<u8> = values
            .iter()
            .flat_map(|v| [7i16, *v, -7].into_iter().flat_map(i16::to_le_bytes))
            .collect();
        for (data, channels, channel) in [(&mono, 1, 0), (&framed, 3, 1)] {
            let s = Samples::Pcm16 {
                data,
                channels,
                channel,
            };
            assert_eq!(s.len(), want.len());
            assert_eq!(s.clone().into_vec(), want, "{channels} channels");
            // Unaligned reads of odd lengths, and blocks in order.
            let mut part = vec![0.0f32; 1_001];
            s.read(12_345, &mut part);
            assert_eq!(part, want[12_345..13_346]);
            let mut blocks = Vec::new();
            s.for_each_block(|b| blocks.extend_from_slice(b));
            assert_eq!(blocks, want);
        }
        let f: Samples = vec![1.0f32, 2.0].into();
        let mut seen = Vec::new();
        f.for_each_block(|b| seen.extend_from_slice(b));
        assert_eq!((seen, f.into_vec()), (vec![1.0, 2.0], vec![1.0, 2.0]));
    }
}
