//! Property-based fuzzing on stable Rust (proptest; cargo-fuzz needs nightly). A target's check
//! runs over every input kept in `testdata/fuzz/<target>/` (inputs that once failed), then over
//! generated ones. A failing input is shrunk, kept there for the next runs, and the test fails
//! naming the file.
//!
//! The generated inputs are the same on every run (a fixed seed), so CI is reproducible;
//! `TRUSTD_FUZZ_CASES=N` asks N inputs per target and `TRUSTD_FUZZ_SEED=random` (or a number)
//! new ones, for a longer search on a developer's machine.

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestError, TestRunner};
use std::path::{Path, PathBuf};

/// The seed generated inputs come from unless `TRUSTD_FUZZ_SEED` says otherwise.
const SEED: u64 = 0x7275_7374_6466_757a;

/// Where `target`'s regression inputs are kept.
fn kept_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/fuzz").join(target)
}

/// Runs `check` over the kept inputs of `target`, then over `cases` inputs of `strategy`
/// (`Err` or a panic is a failure).
pub fn run<S>(target: &str, cases: u32, strategy: S, check: impl Fn(&[u8]) -> Result<(), String>)
where
    S: Strategy<Value = Vec<u8>>,
{
    let dir = kept_dir(target);
    let mut kept: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => {
            entries.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "bin")).collect()
        }
        Err(_) => Vec::new(),
    };
    kept.sort();
    for path in &kept {
        let input = std::fs::read(path).unwrap();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&input)));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("{}: {e}", path.display()),
            Err(_) => panic!("{}: panicked", path.display()),
        }
    }

    let cases = std::env::var("TRUSTD_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(cases);
    let rng_seed = match std::env::var("TRUSTD_FUZZ_SEED").as_deref() {
        Ok("random") => RngSeed::Random,
        Ok(n) => RngSeed::Fixed(n.parse().unwrap_or(SEED)),
        Err(_) => RngSeed::Fixed(SEED),
    };
    let config = Config { cases, failure_persistence: None, rng_seed, max_shrink_iters: 4096, ..Config::default() };
    match TestRunner::new(config).run(&strategy, |input| check(&input).map_err(TestCaseError::fail)) {
        Ok(()) => {}
        Err(TestError::Fail(reason, input)) => {
            std::fs::create_dir_all(&dir).unwrap();
            let name = hex::encode(&crate::digest::HashAlg::Sha256.digest(&input)[..8]);
            let path = dir.join(format!("{name}.bin"));
            std::fs::write(&path, &input).unwrap();
            panic!("{target}: {reason}\nthe input is kept as {} ({})", path.display(), hex::encode(&input));
        }
        Err(TestError::Abort(reason)) => panic!("{target}: aborted: {reason}"),
    }
}

/// An edit a broken or hostile client might make to a valid message.
#[derive(Clone, Debug)]
enum Edit {
    Flip(Index, u8),
    Set(Index, u8),
    Insert(Index, Vec<u8>),
    Remove(Index, usize),
    Truncate(Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<Index>(), 1..=255u8).prop_map(|(i, b)| Edit::Flip(i, b)),
        // Length octets and tags are where parsers break: 0x00, 0x7f–0x84 and 0xff most of all.
        (
            any::<Index>(),
            prop_oneof![
                Just(0x00u8),
                Just(0x7f),
                Just(0x80),
                Just(0x81),
                Just(0x82),
                Just(0x84),
                Just(0xff),
                any::<u8>()
            ]
        )
            .prop_map(|(i, b)| Edit::Set(i, b)),
        (any::<Index>(), prop::collection::vec(any::<u8>(), 1..8)).prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<Index>(), 1..16usize).prop_map(|(i, n)| Edit::Remove(i, n)),
        any::<Index>().prop_map(Edit::Truncate),
    ]
}

fn apply(input: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut out = input.to_vec();
    for e in edits {
        let len = out.len();
        match e {
            _ if len == 0 => {}
            Edit::Flip(i, b) => out[i.index(len)] ^= b,
            Edit::Set(i, b) => out[i.index(len)] = *b,
            Edit::Insert(i, bytes) => {
                let at = i.index(len + 1);
                out.splice(at..at, bytes.iter().copied());
            }
            Edit::Remove(i, n) => {
                let at = i.index(len);
                out.drain(at..(at + n).min(len));
            }
            Edit::Truncate(i) => out.truncate(i.index(len)),
        }
    }
    out
}

/// One of `seeds` with one to four [`Edit`]s, or now and then unchanged (so the check sees
/// valid input too).
pub fn mutations_of(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    assert!(!seeds.is_empty());
    (any::<Index>(), prop::collection::vec(edit(), 0..=4))
        .prop_map(move |(which, edits)| apply(&seeds[which.index(seeds.len())], &edits))
}

/// Arbitrary bytes of up to `max` octets, starting with a SEQUENCE tag half the time.
pub fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    (any::<bool>(), prop::collection::vec(any::<u8>(), 0..max)).prop_map(|(seq, mut b)| {
        if seq && !b.is_empty() {
            b[0] = 0x30;
        }
        b
    })
}
