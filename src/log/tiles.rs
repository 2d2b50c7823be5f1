//! The read path of C2SP tlog-tiles: tile paths, hash tiles and entry bundles.
//!
//! Paths are written here rather than with `tlog_tiles::Tile::path`, which prints the older Go
//! sumdb form (`tile/8/0/…`, `tile/8/data/…`) that C2SP clients do not ask for. The contents of
//! a hash tile are read with `tlog_tiles::Tile::read_data`.

use super::store::TlogReader;
use super::{Hash, HashReader, LogError, TreeSize};
use std::fmt;
use std::ops::Range;

/// Hashes in a full tile, and entries in a full bundle.
pub const TILE_WIDTH: u16 = 256;

/// Tree levels a tile spans: a tile at level L holds hashes of tree level 8·L.
const TILE_HEIGHT: u8 = 8;

/// The highest tile level a path may name (C2SP tlog-tiles).
const MAX_LEVEL: u8 = 63;

/// What a tile holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TileKind {
    /// `tile/<L>/…`: Merkle tree hashes, each the head of a subtree of 256^L entries.
    Hashes {
        /// L, 0 to 63.
        level: u8,
    },
    /// `tile/entries/…`: the entries themselves, each prefixed with its uint16 length.
    Entries,
}

/// A tile or entry bundle: `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]`
/// (C2SP tlog-tiles, "Merkle Tree" and "Log entries").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tile {
    kind: TileKind,
    index: u64,
    width: u16,
}

impl Tile {
    /// The hash tile at `level` with `index` and `width` (1 to 256; 256 is a full tile).
    pub fn hashes(level: u8, index: u64, width: u16) -> Result<Self, LogError> {
        if level > MAX_LEVEL {
            return Err(LogError::BadTilePath(format!("level {level} is above {MAX_LEVEL}")));
        }
        Self::new(TileKind::Hashes { level }, index, width)
    }

    /// The entry bundle with `index` and `width` (1 to 256; 256 is a full bundle).
    pub fn entries(index: u64, width: u16) -> Result<Self, LogError> {
        Self::new(TileKind::Entries, index, width)
    }

    fn new(kind: TileKind, index: u64, width: u16) -> Result<Self, LogError> {
        if !(1..=TILE_WIDTH).contains(&width) {
            return Err(LogError::BadTilePath(format!("width {width} is not 1 to {TILE_WIDTH}")));
        }
        Ok(Tile { kind, index, width })
    }

    /// What the tile holds.
    pub fn kind(&self) -> TileKind {
        self.kind
    }

    /// N: the tile's position in its level.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// W: the number of hashes or entries, 256 when full.
    pub fn width(&self) -> u16 {
        self.width
    }

    /// Whether the tile is full. A full tile never changes and may be cached forever. A partial
    /// tile's bytes never change either for its width, but C2SP lets a log delete it once
    /// the full tile exists, so a shorter cache lifetime suits it.
    pub fn is_full(&self) -> bool {
        self.width == TILE_WIDTH
    }

    /// Parses a path relative to the log's prefix, e.g. `tile/0/x001/x234/067.p/5`.
    /// Only the canonical form is accepted: level and width without leading zeros, level at
    /// most 63, width 1 to 255 after `.p/`, N in 3-digit elements all but the last prefixed
    /// with `x`, no leading all-zero element, nothing else.
    pub fn parse(path: &str) -> Result<Self, LogError> {
        let bad = |why: &str| LogError::BadTilePath(format!("'{}': {why}", path.escape_debug()));
        let rest = path.strip_prefix("tile/").ok_or_else(|| bad("does not start with tile/"))?;
        let (kind, rest) = rest.split_once('/').ok_or_else(|| bad("no index"))?;
        let kind = if kind == "entries" {
            TileKind::Entries
        } else {
            let level = decimal(kind).filter(|&l| l <= u64::from(MAX_LEVEL)).ok_or_else(|| bad("bad level"))?;
            TileKind::Hashes { level: level as u8 }
        };
        let (index_part, width) = match rest.split_once(".p/") {
            Some((n, w)) => {
                let w =
                    decimal(w).filter(|w| (1..u64::from(TILE_WIDTH)).contains(w)).ok_or_else(|| bad("bad width"))?;
                (n, w as u16)
            }
            None => (rest, TILE_WIDTH),
        };
        let mut index = 0u64;
        let elements: Vec<&str> = index_part.split('/').collect();
        for (i, e) in elements.iter().enumerate() {
            let digits = if i + 1 < elements.len() { e.strip_prefix('x') } else { Some(*e) };
            let digits = digits.filter(|d| d.len() == 3 && d.bytes().all(|b| b.is_ascii_digit()));
            let d = digits.and_then(|d| d.parse::<u64>().ok()).ok_or_else(|| bad("bad index element"))?;
            index = index.checked_mul(1000).and_then(|n| n.checked_add(d)).ok_or_else(|| bad("index too large"))?;
        }
        let tile = Tile::new(kind, index, width)?;
        // Re-rendering catches every non-canonical spelling (x000/001, 1234 split oddly, …).
        if tile.path() != path {
            return Err(bad("not the canonical path of its tile"));
        }
        Ok(tile)
    }

    /// The path relative to the log's prefix.
    pub fn path(&self) -> String {
        let mut groups = Vec::new();
        let mut n = self.index;
        loop {
            groups.push(n % 1000);
            n /= 1000;
            if n == 0 {
                break;
            }
        }
        let mut out = String::from("tile/");
        match self.kind {
            TileKind::Hashes { level } => out.push_str(&level.to_string()),
            TileKind::Entries => out.push_str("entries"),
        }
        for (i, g) in groups.iter().enumerate().rev() {
            out.push_str(if i == 0 { "/" } else { "/x" });
            out.push_str(&format!("{g:03}"));
        }
        if !self.is_full() {
            out.push_str(&format!(".p/{}", self.width));
        }
        out
    }

    /// The entries whose hashes (or bytes) the tile holds, as a range of leaf indexes:
    /// `N·256^(L+1)` to `(N·256 + W)·256^L`. None when it lies beyond any possible tree.
    pub fn entry_range(&self) -> Option<Range<u64>> {
        let level = match self.kind {
            TileKind::Hashes { level } => level,
            TileKind::Entries => 0,
        };
        let span = 1u64.checked_shl(u32::from(level) * u32::from(TILE_HEIGHT))?;
        let first = self.index.checked_mul(u64::from(TILE_WIDTH))?;
        let start = first.checked_mul(span)?;
        let end = first.checked_add(u64::from(self.width))?.checked_mul(span)?;
        Some(start..end)
    }

    /// Whether the tile exists in the tree of `size` entries: all it covers is in the tree.
    /// Partial tiles of earlier sizes stay servable (their bytes are a prefix of today's).
    pub fn in_tree(&self, size: TreeSize) -> bool {
        self.entry_range().is_some_and(|r| r.end <= size.0)
    }

    /// Every tile and entry bundle of the tree of `size` entries: the full ones and, at each
    /// level, the partial one on the right (C2SP tlog-tiles, "Partial Tiles").
    pub fn all_for(size: TreeSize) -> Vec<Tile> {
        let mut out = Vec::new();
        let mut push_level = |kind: TileKind, count: u64| {
            let (full, rest) = (count / u64::from(TILE_WIDTH), count % u64::from(TILE_WIDTH));
            out.extend((0..full).map(|index| Tile { kind, index, width: TILE_WIDTH }));
            if rest > 0 {
                out.push(Tile { kind, index: full, width: rest as u16 });
            }
        };
        push_level(TileKind::Entries, size.0);
        let mut level = 0u8;
        let mut count = size.0;
        while count > 0 {
            push_level(TileKind::Hashes { level }, count);
            count /= u64::from(TILE_WIDTH);
            level += 1;
        }
        out
    }
}

impl fmt::Display for Tile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

/// A decimal number without sign or leading zeros.
fn decimal(s: &str) -> Option<u64> {
    if s.is_empty() || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The bytes of a hash tile of the tree of `size` entries: its W hashes, 32 bytes each, in
/// order (C2SP tlog-tiles, "Merkle Tree").
pub fn hash_tile(tile: &Tile, size: TreeSize, r: &dyn HashReader) -> Result<Vec<u8>, LogError> {
    let TileKind::Hashes { level } = tile.kind else {
        return Err(LogError::BadTilePath(format!("{tile} is an entry bundle")));
    };
    if !tile.in_tree(size) {
        return Err(LogError::TileNotInTree(tile.path(), size));
    }
    // in_tree bounds the level to 7 (256^8 entries do not fit a u64), so `8 * level` fits the
    // u8 that tlog_tiles multiplies in, and its assertions on height and width hold.
    let t = tlog_tiles::Tile::new(TILE_HEIGHT, level, tile.index, u32::from(tile.width), false);
    let reader = TlogReader::new(r);
    t.read_data(&reader).map_err(|e| reader.error(e))
}

/// Splits a hash tile into its hashes, checking its length against the tile's width.
pub fn parse_hash_tile(tile: &Tile, data: &[u8]) -> Result<Vec<Hash>, LogError> {
    if data.len() != usize::from(tile.width) * Hash::LEN {
        return Err(LogError::BadTilePath(format!("{tile}: {} bytes for {} hashes", data.len(), tile.width)));
    }
    data.chunks_exact(Hash::LEN).map(Hash::from_slice).collect()
}

/// The bytes of an entry bundle: each of its W entries as a big-endian uint16 length and the
/// entry (C2SP tlog-tiles, "Log entries").
pub fn entry_bundle<E: AsRef<[u8]>>(tile: &Tile, entries: &[E]) -> Result<Vec<u8>, LogError> {
    if tile.kind != TileKind::Entries {
        return Err(LogError::BadEntryBundle(format!("{tile} is a hash tile")));
    }
    if entries.len() != usize::from(tile.width) {
        return Err(LogError::BadEntryBundle(format!("{tile} holds {} entries, not {}", tile.width, entries.len())));
    }
    let mut out = Vec::new();
    for e in entries {
        let e = e.as_ref();
        let len = u16::try_from(e.len()).map_err(|_| LogError::EntryTooLarge(e.len()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    Ok(out)
}

/// Splits an entry bundle into its entries: exactly W of them and nothing after.
pub fn parse_entry_bundle<'a>(tile: &Tile, data: &'a [u8]) -> Result<Vec<&'a [u8]>, LogError> {
    let mut rest = data;
    let mut out = Vec::with_capacity(usize::from(tile.width));
    while !rest.is_empty() {
        let (len, tail) = match rest {
            [a, b, tail @ ..] => (usize::from(u16::from_be_bytes([*a, *b])), tail),
            _ => return Err(LogError::BadEntryBundle("truncated length".into())),
        };
        if tail.len() < len {
            return Err(LogError::BadEntryBundle(format!("entry {} truncated", out.len())));
        }
        let (entry, tail) = tail.split_at(len);
        out.push(entry);
        rest = tail;
    }
    if out.len() != usize::from(tile.width) {
        return Err(LogError::BadEntryBundle(format!("{} entries for width {}", out.len(), tile.width)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{tree, HashIndex, MemoryHashes};

    #[test]
    fn spec_examples() {
        let t = Tile::hashes(0, 1_234_067, 256).unwrap();
        assert_eq!(t.path(), "tile/0/x001/x234/067");
        assert_eq!(Tile::parse("tile/0/x001/x234/067").unwrap(), t);
        let t = Tile::entries(1_234_067, 5).unwrap();
        assert_eq!(t.path(), "tile/entries/x001/x234/067.p/5");
        assert_eq!(Tile::parse(&t.path()).unwrap(), t);
        assert_eq!(Tile::hashes(2, 0, 1).unwrap().path(), "tile/2/000.p/1");
        assert_eq!(Tile::hashes(63, 1000, 256).unwrap().path(), "tile/63/x001/000");
        assert_eq!(
            Tile::entries(u64::MAX, 255).unwrap().path(),
            "tile/entries/x018/x446/x744/x073/x709/x551/615.p/255"
        );

        // "A tree of size 70,000 will be represented by 273 full level 0 tiles, one partial
        // level 0 tile of width 112, one full level 1 tile, one partial level 1 tile of width
        // 17, and one partial level 2 tile of width 1."
        let tiles = Tile::all_for(TreeSize(70_000));
        let hashes = |level| tiles.iter().filter(move |t| t.kind == TileKind::Hashes { level });
        assert_eq!(hashes(0).filter(|t| t.is_full()).count(), 273);
        assert_eq!(hashes(0).filter(|t| !t.is_full()).map(|t| (t.index, t.width)).collect::<Vec<_>>(), [(273, 112)]);
        assert_eq!(hashes(1).map(|t| (t.index, t.width)).collect::<Vec<_>>(), [(0, 256), (1, 17)]);
        assert_eq!(hashes(2).map(|t| (t.index, t.width)).collect::<Vec<_>>(), [(0, 1)]);
        assert_eq!(hashes(3).count(), 0);
        // "A tree of size 256 will be represented by a full level 0 tile and a partial level 1
        // tile of width 1."
        let tiles = Tile::all_for(TreeSize(256));
        assert_eq!(
            tiles.iter().map(Tile::path).collect::<Vec<_>>(),
            ["tile/entries/000", "tile/0/000", "tile/1/000.p/1"]
        );
        assert!(tiles.iter().all(|t| t.in_tree(TreeSize(256))));
        assert!(Tile::all_for(TreeSize(0)).is_empty());
    }

    #[test]
    fn paths_round_trip() {
        for index in [0, 1, 999, 1000, 1001, 999_999, 1_000_000, 1_234_067, u64::MAX] {
            for width in [1, 2, 255, 256] {
                for t in [Tile::hashes(0, index, width), Tile::hashes(5, index, width), Tile::entries(index, width)] {
                    let t = t.unwrap();
                    assert_eq!(Tile::parse(&t.path()).unwrap(), t, "{t}");
                }
            }
        }
    }

    #[test]
    fn malformed_paths_are_rejected() {
        for p in [
            "",
            "tile",
            "tile/",
            "tile/0",
            "tile/0/",
            "/tile/0/000",
            "tiles/0/000",
            "tile/00/000",
            "tile/01/000",
            "tile/64/000",
            "tile/-1/000",
            "tile/+1/000",
            "tile/a/000",
            "tile/data/000",
            "tile/0/00",
            "tile/0/0000",
            "tile/0/1",
            "tile/0/x000",
            "tile/0/x000/001",
            "tile/0/x001/x234/67",
            "tile/0/001/234",
            "tile/0/x001/234/",
            "tile/0/x1/234",
            "tile/0/000.p/0",
            "tile/0/000.p/256",
            "tile/0/000.p/05",
            "tile/0/000.p/",
            "tile/0/000.p/1/",
            "tile/0/000.p/1.5",
            "tile/0/000.p",
            "tile/0/000.q/5",
            "tile/0/000/",
            "tile/0/x018/x446/x744/x073/x709/x551/616",
            "tile/0/x001/x018/x446/x744/x073/x709/x551/615",
            "tile/entries/00a",
            "tile/entries/000.p/1.p/1",
            "tile/0/0\u{0661}0",
        ] {
            assert!(Tile::parse(p).is_err(), "{p:?} accepted");
        }
        assert!(Tile::hashes(64, 0, 1).is_err());
        assert!(Tile::entries(0, 0).is_err());
        assert!(Tile::entries(0, 257).is_err());
    }

    /// MTH(D[lo:hi]) straight from the leaf hashes.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => tree::EMPTY_ROOT,
            1 => leaves[0],
            n => {
                let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
                tree::node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    #[test]
    fn tile_contents_of_a_1000_entry_tree() {
        let entries: Vec<Vec<u8>> = (0..1000u32).map(|i| format!("entry {i}").into_bytes()).collect();
        let leaves: Vec<Hash> = entries.iter().map(|e| tree::leaf_hash(e)).collect();
        let mut store = MemoryHashes::new();
        // In two batches, as a sequencer would, checking the tiles of the first size too.
        for range in [0..300, 300..1000] {
            let a = tree::append(TreeSize(range.start as u64), &entries[range.clone()], &store).unwrap();
            store.extend_at(a.first_index, &a.hashes).unwrap();
            let size = TreeSize(range.end as u64);
            for tile in Tile::all_for(size) {
                let span = tile.entry_range().unwrap();
                let (start, end) = (span.start as usize, span.end as usize);
                match tile.kind {
                    TileKind::Entries => {
                        let bundle = entry_bundle(&tile, &entries[start..end]).unwrap();
                        let parsed = parse_entry_bundle(&tile, &bundle).unwrap();
                        assert_eq!(parsed, entries[start..end].iter().map(Vec::as_slice).collect::<Vec<_>>());
                    }
                    TileKind::Hashes { level } => {
                        let data = hash_tile(&tile, size, &store).unwrap();
                        let got = parse_hash_tile(&tile, &data).unwrap();
                        // Each hash is the head of the i-th subtree of 256^level entries.
                        let chunk = 1usize << (8 * level);
                        let want: Vec<Hash> = leaves[start..end].chunks(chunk).map(mth).collect();
                        assert_eq!(got, want, "{tile}");
                        // And it is the stored hash at that position.
                        let idx: Vec<HashIndex> = (0..u64::from(tile.width))
                            .map(|i| HashIndex::of(8 * level, tile.index * 256 + i))
                            .collect();
                        assert_eq!(got, store.read_hashes(&idx).unwrap());
                    }
                }
            }
        }
        // Level 1 of 1000 entries: three full subtrees of 256, nothing else.
        assert!(Tile::hashes(1, 0, 3).unwrap().in_tree(TreeSize(1000)));
        assert!(!Tile::hashes(1, 0, 4).unwrap().in_tree(TreeSize(1000)));
        // A partial tile of an earlier size is a prefix of today's.
        let old = hash_tile(&Tile::hashes(0, 1, 44).unwrap(), TreeSize(1000), &store).unwrap();
        let now = hash_tile(&Tile::hashes(0, 1, 256).unwrap(), TreeSize(1000), &store).unwrap();
        assert_eq!(old[..], now[..44 * 32]);
        // Tiles beyond the tree are errors, not panics.
        for t in [Tile::hashes(0, 3, 233), Tile::hashes(2, 0, 1), Tile::hashes(63, u64::MAX, 256)] {
            assert!(matches!(hash_tile(&t.unwrap(), TreeSize(1000), &store), Err(LogError::TileNotInTree(..))));
        }
        assert!(hash_tile(&Tile::entries(0, 1).unwrap(), TreeSize(1000), &store).is_err());
    }

    #[test]
    fn malformed_bundles_are_rejected() {
        let tile = Tile::entries(0, 2).unwrap();
        let bundle = entry_bundle(&tile, &[b"ab".as_slice(), b""]).unwrap();
        assert_eq!(bundle, [0, 2, b'a', b'b', 0, 0]);
        for cut in 0..bundle.len() {
            assert!(parse_entry_bundle(&tile, &bundle[..cut]).is_err());
        }
        let mut longer = bundle.clone();
        longer.extend_from_slice(&[0, 0]);
        assert!(parse_entry_bundle(&tile, &longer).is_err());
        assert!(entry_bundle(&tile, &[b"x"]).is_err());
        assert!(matches!(entry_bundle(&tile, &[vec![0u8; 65_536], vec![]]), Err(LogError::EntryTooLarge(_))));
        assert!(parse_hash_tile(&Tile::hashes(0, 0, 2).unwrap(), &[0; 63]).is_err());
    }
}
