//! Fuzzing the log's read path inputs (`crate::testing::fuzz`): tile paths as a client writes
//! them, and entry bundles as an auditor's client reads them.

use super::tiles::{entry_bundle, parse_entry_bundle, parse_hash_tile, Tile};
use super::TreeSize;
use crate::testing::fuzz;
use proptest::prelude::*;

/// Tiles of every kind over the whole range of each field: levels 0 to 70 (past the last, 63),
/// indexes up to u64::MAX, widths 0 to 300 (past 1 to 256).
fn tiles() -> impl Strategy<Value = Result<Tile, super::LogError>> {
    let index = prop_oneof![0..2000u64, Just(u64::MAX), Just(u64::MAX / 1000), any::<u64>()];
    (prop::option::of(0..=70u8), index, 0..=300u16).prop_map(|(level, index, width)| match level {
        Some(level) => Tile::hashes(level, index, width),
        None => Tile::entries(index, width),
    })
}

/// Paths made of the characters tile paths use, and edits of real ones.
fn paths() -> impl Strategy<Value = Vec<u8>> {
    let alphabet: Vec<u8> = b"tile/entries0123456789x.p/".to_vec();
    let made = prop::collection::vec(prop::sample::select(alphabet), 0..48);
    let real: Vec<Vec<u8>> = [
        Tile::hashes(0, 1_234_067, 5).unwrap(),
        Tile::hashes(63, u64::MAX, 256).unwrap(),
        Tile::entries(0, 256).unwrap(),
        Tile::entries(1000, 1).unwrap(),
    ]
    .iter()
    .map(|t| t.path().into_bytes())
    .collect();
    prop_oneof![made, fuzz::mutations_of(real)]
}

/// Only a canonical path parses, and it is its tile's path.
fn check_path(input: &[u8]) -> Result<(), String> {
    let path = String::from_utf8_lossy(input);
    if let Ok(tile) = Tile::parse(&path) {
        if tile.path() != path {
            return Err(format!("'{path}' parsed as {tile}"));
        }
        // Every servable tile's range and presence are computable.
        let _ = (tile.entry_range(), tile.in_tree(TreeSize(u64::MAX)));
    }
    Ok(())
}

#[test]
fn tile_paths_parse_only_in_canonical_form() {
    fuzz::run("tile_path", 2048, paths(), check_path);
}

#[test]
fn every_tile_parses_back_from_its_path() {
    proptest::test_runner::TestRunner::deterministic()
        .run(&tiles(), |tile| {
            if let Ok(tile) = tile {
                prop_assert_eq!(Tile::parse(&tile.path()).ok(), Some(tile));
            }
            Ok(())
        })
        .unwrap();
}

/// A bundle that parses is exactly the encoding of what it parsed to; a hash tile, exactly its
/// width of hashes.
fn check_bundle(input: &[u8]) -> Result<(), String> {
    let Some((&width, data)) = input.split_first() else {
        return Ok(());
    };
    let tile = match Tile::entries(7, u16::from(width).max(1)) {
        Ok(t) => t,
        Err(e) => return Err(e.to_string()),
    };
    if let Ok(entries) = parse_entry_bundle(&tile, data) {
        let again = entry_bundle(&tile, &entries).map_err(|e| e.to_string())?;
        if again != data {
            return Err("a bundle parsed that is not its entries' encoding".into());
        }
    }
    let hashes = Tile::hashes(0, 7, tile.width()).map_err(|e| e.to_string())?;
    if let Ok(h) = parse_hash_tile(&hashes, data) {
        if h.len() != usize::from(tile.width()) {
            return Err("a hash tile of the wrong width parsed".into());
        }
    }
    Ok(())
}

#[test]
fn entry_bundles_parse_only_as_their_own_encoding() {
    let bundles = prop_oneof![
        fuzz::bytes(600),
        // Well-formed bundles of one to three entries, then edited.
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..=3).prop_flat_map(|entries| {
            let tile = Tile::entries(7, entries.len() as u16).unwrap();
            let mut input = vec![entries.len() as u8];
            input.extend(entry_bundle(&tile, &entries).unwrap());
            fuzz::mutations_of(vec![input])
        }),
    ];
    fuzz::run("entry_bundle", 2048, bundles, check_bundle);
}
