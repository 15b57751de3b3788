//! SplitMix64 against its reference implementation's outputs.
//!
//! Expected values: Sebastiano Vigna's reference C implementation, `splitmix64.c`
//! (https://prng.di.unimi.it/splitmix64.c; `next()` adds 0x9e3779b97f4a7c15 to the state, then
//! applies the finaliser with shifts 30, 27, 31 and multipliers 0xbf58476d1ce4e5b9,
//! 0x94d049bb133111eb), transcribed into a 15-line C program, compiled with gcc and run with the
//! state set to 0, 1, 2^64 - 1 and 1234567, printing the first five `next()` values of each. The
//! four of seed 0 are also the published ones that xoshiro256's seeding and Java's
//! `new SplittableRandom(0).nextLong()` (the same generator) give.

use allconv_splitmix::{advance, mix, output, GAMMA};

#[test]
fn outputs_equal_the_reference_implementation() {
    let reference: [(u64, [u64; 5]); 4] = [
        (
            0,
            [
                0xE220_A839_7B1D_CDAF,
                0x6E78_9E6A_A1B9_65F4,
                0x06C4_5D18_8009_454F,
                0xF88B_B8A8_724C_81EC,
                0x1B39_896A_51A8_749B,
            ],
        ),
        (
            1,
            [
                0x910A_2DEC_8902_5CC1,
                0xBEEB_8DA1_658E_EC67,
                0xF893_A2EE_FB32_555E,
                0x71C1_8690_EE42_C90B,
                0x71BB_54D8_D101_B5B9,
            ],
        ),
        (
            u64::MAX,
            [
                0xE4D9_7177_1B65_2C20,
                0xE99F_F867_DBF6_82C9,
                0x382F_F84C_B272_81E9,
                0x6D1D_B36C_CBA9_82D2,
                0xB4A0_472E_5780_69AE,
            ],
        ),
        (
            1_234_567,
            [
                0x599E_D017_FB08_FC85,
                0x2C73_F084_5854_0FA5,
                0x883E_BCE5_A3F2_7C77,
                0x3FBE_F740_E917_7B3F,
                0xE3B8_3467_08CB_5ECD,
            ],
        ),
    ];
    for (seed, outputs) in reference {
        let got: Vec<u64> = (0..5).map(|i| output(seed, i)).collect();
        assert_eq!(got, outputs, "seed {seed:#x}");
    }
}

#[test]
fn output_i_is_the_finaliser_of_the_state_i_plus_one_steps_on() {
    // The reference's loop, state by state: output i of a generator is output 0 of the same
    // generator advanced by i, and the finaliser of the state after i + 1 additions of GAMMA.
    let mut state = 0xDEAD_BEEF_u64;
    for i in 0..100 {
        state = state.wrapping_add(GAMMA);
        assert_eq!(output(0xDEAD_BEEF, i), mix(state), "i {i}");
        assert_eq!(output(advance(0xDEAD_BEEF, i), 0), mix(state), "i {i}");
    }
}
