#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

/// The increment of SplitMix64's state per output: the odd integer nearest `2^64 / phi`
/// ("golden gamma"), as in Java's `SplittableRandom` and Vigna's `splitmix64.c`.
pub const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// The two multipliers of [`mix`], in order (Stafford's "Mix13" variant of MurmurHash3's
/// finaliser), for code that must compute [`mix`] in another form (a vectorised loop, a GPU
/// kernel) and stay bit for bit equal to it.
pub const MIX_MULTIPLIERS: [u64; 2] = [0xBF58_476D_1CE4_E5B9, 0x94D0_49BB_1331_11EB];

/// SplitMix64's output function: a bijection on `u64` whose outputs for consecutive inputs look
/// unrelated (every input bit affects every output bit).
#[inline]
pub fn mix(z: u64) -> u64 {
    let z = (z ^ (z >> 30)).wrapping_mul(MIX_MULTIPLIERS[0]);
    let z = (z ^ (z >> 27)).wrapping_mul(MIX_MULTIPLIERS[1]);
    z ^ (z >> 31)
}

/// The generator's state `steps` outputs after `state`: `state + steps * GAMMA` (mod 2^64).
#[inline]
pub fn advance(state: u64, steps: u64) -> u64 {
    state.wrapping_add(steps.wrapping_mul(GAMMA))
}

/// Output `i` (counted from 0, so the `(i+1)`-th) of the SplitMix64 generator whose state is
/// `state`: [`mix`] of the state `i + 1` steps on. Output 0 is what the reference `next()`
/// returns first for a generator seeded with `state`.
#[inline]
pub fn output(state: u64, i: u64) -> u64 {
    mix(advance(state, i.wrapping_add(1)))
}
