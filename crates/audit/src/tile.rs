//! C2SP tlog-tiles: the tree stored and served as tiles of height 8.
//!
//! A tile at tile level `L` and index `N` holds up to 256 consecutive hashes of Merkle level
//! `8 L`: the nodes `(8 L, 256 N + i)`. The hashes of the Merkle levels in between are
//! recomputed from the tile. A tree of size `s` has `s >> 8L` hashes at tile level `L`; all of
//! its tiles are full (256 wide) except the rightmost of each level, which is partial (1 to 255
//! wide) when that count is not a multiple of 256. Paths are `tile/<L>/<N>[.p/<W>]`, and entry
//! bundles (the entries of a level-0 tile) `tile/entries/<N>[.p/<W>]`, with `N` written in
//! 3-digit groups, all but the last prefixed by `x`: 1234067 is `x001/x234/067`.

use std::fmt;

use crate::hash::{HASH_SIZE, Hash, NodeId, node_hash};
use crate::tree::{HashReader, ReadError};

/// Merkle levels per tile.
pub const TILE_HEIGHT: u8 = 8;
/// Hashes in a full tile.
pub const TILE_WIDTH: u16 = 256;
/// Highest tile level a path may name.
pub const MAX_TILE_LEVEL: u8 = 63;
/// Largest entry an entry bundle can hold (its length prefix is a big-endian `u16`).
pub const MAX_BUNDLE_ENTRY: usize = u16::MAX as usize;

/// A tile path, entry bundle or tile body is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileError {
    #[error("malformed tile path {0:?}")]
    Path(String),
    #[error("tile data of {0} bytes is not a whole number of 1 to 256 hashes")]
    Data(usize),
    #[error("tile {tile} should hold {expected} hashes, not {found}")]
    Width {
        tile: String,
        expected: usize,
        found: usize,
    },
    #[error("entry {index} of {len} bytes does not fit an entry bundle (at most 65535)")]
    EntryTooLarge { index: usize, len: usize },
    #[error("malformed entry bundle: {0}")]
    Bundle(&'static str),
}

/// Number of hashes at tile level `level` in a tree of `size` leaves: `size >> 8 level`.
fn hashes_at(level: u8, size: u64) -> u64 {
    size.checked_shr(u32::from(level) * u32::from(TILE_HEIGHT))
        .unwrap_or(0)
}

/// A tile: tile level, index within the level, and width (1 to 256 hashes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tile {
    level: u8,
    index: u64,
    width: u16,
}

impl Tile {
    /// A tile; `None` unless `level <= 63` and `1 <= width <= 256`.
    pub fn new(level: u8, index: u64, width: u16) -> Option<Self> {
        (level <= MAX_TILE_LEVEL && (1..=TILE_WIDTH).contains(&width)).then_some(Tile {
            level,
            index,
            width,
        })
    }

    /// The tile `(level, index)` as it is in a tree of `size` leaves, full or partial; `None` if
    /// that tree has no hash in it.
    pub fn in_tree(level: u8, index: u64, size: u64) -> Option<Self> {
        let count = hashes_at(level, size);
        let first = index.checked_mul(u64::from(TILE_WIDTH))?;
        let width = count.checked_sub(first)?.min(u64::from(TILE_WIDTH));
        Tile::new(level, index, u16::try_from(width).ok()?)
    }

    pub fn level(&self) -> u8 {
        self.level
    }

    pub fn index(&self) -> u64 {
        self.index
    }

    pub fn width(&self) -> u16 {
        self.width
    }

    pub fn is_full(&self) -> bool {
        self.width == TILE_WIDTH
    }

    /// `tile/<L>/<N>[.p/<W>]`.
    pub fn path(&self) -> String {
        format!(
            "tile/{}/{}{}",
            self.level,
            format_tile_index(self.index),
            partial_suffix(self.width)
        )
    }

    /// Parses a path written by [`Tile::path`]; non-canonical forms are refused.
    pub fn parse_path(path: &str) -> Result<Self, TileError> {
        let bad = || TileError::Path(path.to_owned());
        let rest = path.strip_prefix("tile/").ok_or_else(bad)?;
        let (level, rest) = rest.split_once('/').ok_or_else(bad)?;
        let level = parse_decimal(level)
            .and_then(|l| u8::try_from(l).ok())
            .filter(|l| *l <= MAX_TILE_LEVEL)
            .ok_or_else(bad)?;
        let (index, width) = parse_index_width(rest).ok_or_else(bad)?;
        Tile::new(level, index, width).ok_or_else(bad)
    }

    /// The nodes this tile holds, left to right.
    pub fn nodes(&self) -> impl Iterator<Item = NodeId> + use<> {
        let level = self.level.saturating_mul(TILE_HEIGHT);
        let first = self.index.saturating_mul(u64::from(TILE_WIDTH));
        (0..u64::from(self.width)).map(move |i| NodeId::new(level, first + i))
    }

    /// The entry bundle holding the entries of this tile, for a level-0 tile.
    pub fn entry_bundle(&self) -> Option<EntryBundle> {
        (self.level == 0).then_some(EntryBundle {
            index: self.index,
            width: self.width,
        })
    }
}

impl fmt::Display for Tile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

/// An entry bundle: the entries whose leaf hashes form level-0 tile `index` of that width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryBundle {
    index: u64,
    width: u16,
}

impl EntryBundle {
    /// The bundle holding entry `entry` in a tree of `size` leaves; `None` if `entry >= size`.
    pub fn for_entry(entry: u64, size: u64) -> Option<Self> {
        if entry >= size {
            return None;
        }
        Tile::in_tree(0, entry / u64::from(TILE_WIDTH), size)?.entry_bundle()
    }

    pub fn index(&self) -> u64 {
        self.index
    }

    pub fn width(&self) -> u16 {
        self.width
    }

    /// The level-0 tile of the same entries.
    pub fn tile(&self) -> Tile {
        Tile {
            level: 0,
            index: self.index,
            width: self.width,
        }
    }

    /// Index of the first entry in the bundle.
    pub fn first_entry(&self) -> u64 {
        self.index.saturating_mul(u64::from(TILE_WIDTH))
    }

    /// `tile/entries/<N>[.p/<W>]`.
    pub fn path(&self) -> String {
        format!(
            "tile/entries/{}{}",
            format_tile_index(self.index),
            partial_suffix(self.width)
        )
    }

    /// Parses a path written by [`EntryBundle::path`]; non-canonical forms are refused.
    pub fn parse_path(path: &str) -> Result<Self, TileError> {
        let bad = || TileError::Path(path.to_owned());
        let rest = path.strip_prefix("tile/entries/").ok_or_else(bad)?;
        let (index, width) = parse_index_width(rest).ok_or_else(bad)?;
        Tile::new(0, index, width)
            .and_then(|t| t.entry_bundle())
            .ok_or_else(bad)
    }
}

impl fmt::Display for EntryBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

fn partial_suffix(width: u16) -> String {
    if width < TILE_WIDTH {
        format!(".p/{width}")
    } else {
        String::new()
    }
}

/// A tile index in 3-digit path elements, all but the last prefixed by `x`:
/// 1234067 is `x001/x234/067`, 5 is `005`.
pub fn format_tile_index(index: u64) -> String {
    let mut groups = Vec::new();
    let mut n = index;
    loop {
        groups.push(n % 1000);
        n /= 1000;
        if n == 0 {
            break;
        }
    }
    let last = groups.len() - 1;
    groups
        .iter()
        .rev()
        .enumerate()
        .map(|(i, g)| {
            if i == last {
                format!("{g:03}")
            } else {
                format!("x{g:03}")
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Decimal ASCII without sign or leading zeros.
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

/// `<N>[.p/<W>]` → (index, width).
fn parse_index_width(s: &str) -> Option<(u64, u16)> {
    let (index, width) = match s.split_once(".p/") {
        Some((index, w)) => {
            let w = u16::try_from(parse_decimal(w)?).ok()?;
            if !(1..TILE_WIDTH).contains(&w) {
                return None;
            }
            (index, w)
        }
        None => (s, TILE_WIDTH),
    };
    let groups: Vec<&str> = index.split('/').collect();
    let (last, init) = groups.split_last()?;
    let mut n: u64 = 0;
    for (i, g) in init.iter().enumerate() {
        let digits = g.strip_prefix('x')?;
        let v = three_digits(digits)?;
        // No leading all-zero group: every index has one spelling.
        if i == 0 && v == 0 {
            return None;
        }
        n = n.checked_mul(1000)?.checked_add(v)?;
    }
    n = n.checked_mul(1000)?.checked_add(three_digits(last)?)?;
    Some((n, width))
}

fn three_digits(s: &str) -> Option<u64> {
    (s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Every tile of a tree of `size` leaves, full and partial: by level, then index.
pub fn tiles_for_size(size: u64) -> impl Iterator<Item = Tile> {
    (0..=MAX_TILE_LEVEL)
        .take_while(move |level| hashes_at(*level, size) > 0)
        .flat_map(move |level| {
            let count = hashes_at(level, size).div_ceil(u64::from(TILE_WIDTH));
            (0..count).filter_map(move |index| Tile::in_tree(level, index, size))
        })
}

/// The tiles a tree of `new_size` leaves has that a tree of `old_size` leaves has not (new, or
/// wider): what a sequencer must write after growing the tree from `old_size` to `new_size`.
pub fn new_tiles(old_size: u64, new_size: u64) -> impl Iterator<Item = Tile> {
    (0..=MAX_TILE_LEVEL)
        .take_while(move |level| hashes_at(*level, new_size) > 0)
        .flat_map(move |level| {
            let old = hashes_at(level, old_size);
            let new = hashes_at(level, new_size);
            let width = u64::from(TILE_WIDTH);
            let range = if new > old {
                (old / width)..new.div_ceil(width)
            } else {
                0..0
            };
            range.filter_map(move |index| Tile::in_tree(level, index, new_size))
        })
}

/// Where a stored hash is found: the tile whose bottom row covers it, and which hashes of that
/// bottom row it is computed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashLocation {
    /// Tile level: `node.level / 8`.
    pub tile_level: u8,
    /// Tile index within that level.
    pub tile_index: u64,
    /// Position in the tile of the first bottom-row hash the node covers.
    pub start: u16,
    /// Number of bottom-row hashes the node covers: `2^(node.level % 8)`; 1 when the node is
    /// itself in the tile.
    pub count: u16,
}

impl HashLocation {
    /// The narrowest tile width that holds the node.
    pub fn min_width(&self) -> u16 {
        self.start + self.count
    }
}

/// The tile location of the node `(level, index)`; `None` for levels above 63.
pub fn locate_hash(node: NodeId) -> Option<HashLocation> {
    if node.level > MAX_TILE_LEVEL {
        return None;
    }
    let tile_level = node.level / TILE_HEIGHT;
    let rise = u32::from(node.level % TILE_HEIGHT);
    // Index, within the tile level's row, of the first bottom-row hash the node covers.
    let first = u128::from(node.index) << rise;
    let tile_index = u64::try_from(first / u128::from(TILE_WIDTH)).ok()?;
    let start = u16::try_from(first % u128::from(TILE_WIDTH)).ok()?;
    Some(HashLocation {
        tile_level,
        tile_index,
        start,
        count: 1 << rise,
    })
}

/// The hashes of a tile, read from any [`HashReader`] (for a sequencer writing tiles).
pub fn tile_hashes<R: HashReader + ?Sized>(r: &R, tile: Tile) -> Result<Vec<Hash>, ReadError> {
    tile.nodes().map(|n| r.read_hash(n)).collect()
}

/// The bytes of a tile: its hashes concatenated.
pub fn encode_tile(hashes: &[Hash]) -> Vec<u8> {
    hashes.iter().flat_map(|h| h.0).collect()
}

/// The hashes of a tile body; it must hold exactly `tile.width()` hashes.
pub fn decode_tile(tile: Tile, data: &[u8]) -> Result<Vec<Hash>, TileError> {
    let (chunks, rest) = data.as_chunks::<HASH_SIZE>();
    if !rest.is_empty() || chunks.is_empty() || chunks.len() > usize::from(TILE_WIDTH) {
        return Err(TileError::Data(data.len()));
    }
    if chunks.len() != usize::from(tile.width) {
        return Err(TileError::Width {
            tile: tile.path(),
            expected: usize::from(tile.width),
            found: chunks.len(),
        });
    }
    Ok(chunks.iter().map(|c| Hash(*c)).collect())
}

/// An entry bundle body: each entry prefixed by its length as a big-endian `u16`.
pub fn encode_entry_bundle<I, E>(entries: I) -> Result<Vec<u8>, TileError>
where
    I: IntoIterator<Item = E>,
    E: AsRef<[u8]>,
{
    let mut out = Vec::new();
    for (index, e) in entries.into_iter().enumerate() {
        let e = e.as_ref();
        let len = u16::try_from(e.len()).map_err(|_| TileError::EntryTooLarge {
            index,
            len: e.len(),
        })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    Ok(out)
}

/// The entries of an entry bundle body.
pub fn decode_entry_bundle(data: &[u8]) -> Result<Vec<Vec<u8>>, TileError> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let Some((len, tail)) = rest.split_first_chunk::<2>() else {
            return Err(TileError::Bundle("truncated length prefix"));
        };
        let len = usize::from(u16::from_be_bytes(*len));
        let Some((entry, tail)) = tail.split_at_checked(len) else {
            return Err(TileError::Bundle("truncated entry"));
        };
        out.push(entry.to_vec());
        rest = tail;
    }
    if out.len() > usize::from(TILE_WIDTH) {
        return Err(TileError::Bundle("more than 256 entries"));
    }
    Ok(out)
}

/// A source of tiles, as a storage layer keeps them.
pub trait TileReader {
    /// The hashes of `tile`. A wider version of the same tile (from a later tree size) may be
    /// returned instead: a tile only ever grows by appending.
    fn read_tile(&self, tile: Tile) -> Result<Vec<Hash>, ReadError>;
}

impl<T: TileReader + ?Sized> TileReader for &T {
    fn read_tile(&self, tile: Tile) -> Result<Vec<Hash>, ReadError> {
        (**self).read_tile(tile)
    }
}

/// A [`HashReader`] over the tiles of a tree of `size` leaves: each node is read from the tile
/// that covers it and, when it lies between tile levels, recomputed from that tile's bottom
/// row. The tiles are trusted as the store's own; a client reading tiles from elsewhere checks
/// the proofs built from them against a signed checkpoint.
#[derive(Debug, Clone)]
pub struct TileHashReader<T> {
    tiles: T,
    size: u64,
}

impl<T: TileReader> TileHashReader<T> {
    pub fn new(tiles: T, size: u64) -> Self {
        TileHashReader { tiles, size }
    }
}

impl<T: TileReader> HashReader for TileHashReader<T> {
    fn read_hash(&self, node: NodeId) -> Result<Hash, ReadError> {
        if !node.is_in_tree(self.size) {
            return Err(ReadError::Missing(node));
        }
        let loc = locate_hash(node).ok_or(ReadError::Missing(node))?;
        let tile = Tile::in_tree(loc.tile_level, loc.tile_index, self.size)
            .filter(|t| t.width >= loc.min_width())
            .ok_or(ReadError::Missing(node))?;
        let hashes = self.tiles.read_tile(tile)?;
        let start = usize::from(loc.start);
        let end = usize::from(loc.min_width());
        let Some(row) = hashes.get(start..end) else {
            return Err(ReadError::ShortTile {
                tile: tile.path(),
                found: hashes.len(),
                needed: end,
            });
        };
        let mut row = row.to_vec();
        while row.len() > 1 {
            row = row
                .chunks_exact(2)
                .filter_map(|pair| match pair {
                    [l, r] => Some(node_hash(l, r)),
                    _ => None,
                })
                .collect();
        }
        row.first().copied().ok_or(ReadError::Missing(node))
    }
}
