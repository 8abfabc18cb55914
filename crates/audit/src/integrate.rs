//! The sequencer's arithmetic: grows a tree leaf by leaf and yields the C2SP tiles that changed,
//! holding in memory only the right edge (one partial tile per tile level and the compact
//! range), so a log of any size is extended in constant memory.

use std::collections::{BTreeMap, BTreeSet};

use crate::hash::{Hash, NodeId};
use crate::tile::{TILE_HEIGHT, TILE_WIDTH, Tile, TileHashReader, TileReader};
use crate::tree::{ReadError, RootBuilder};

/// Stored tiles do not describe the tree they are said to.
#[derive(Debug, thiserror::Error)]
pub enum IntegrateError {
    #[error("tile {tile} is missing")]
    MissingTile { tile: String },
    #[error("tile {tile} holds {found} hashes, not {expected}")]
    TileWidth {
        tile: String,
        expected: usize,
        found: usize,
    },
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// Grows a Merkle tree and keeps its tiles (see the module documentation).
#[derive(Debug, Clone, Default)]
pub struct Integrator {
    builder: RootBuilder,
    /// `rows[L]`: the hashes of the rightmost, partial tile of tile level `L` (fewer than 256).
    rows: Vec<Vec<Hash>>,
    /// Tiles completed since the last [`take_tiles`](Self::take_tiles).
    full: Vec<(Tile, Vec<Hash>)>,
    /// Tile levels whose partial tile changed since the last `take_tiles`.
    dirty: BTreeSet<u8>,
}

/// Number of hashes at tile level `level` in a tree of `size` leaves.
fn count_at(level: u8, size: u64) -> u64 {
    size.checked_shr(u32::from(level) * u32::from(TILE_HEIGHT))
        .unwrap_or(0)
}

struct EdgeTiles<'a>(&'a BTreeMap<(u8, u64), Vec<Hash>>);

impl TileReader for EdgeTiles<'_> {
    fn read_tile(&self, tile: Tile) -> Result<Vec<Hash>, ReadError> {
        self.0
            .get(&(tile.level(), tile.index()))
            .cloned()
            .ok_or(ReadError::Missing(NodeId::new(
                tile.level().saturating_mul(TILE_HEIGHT),
                tile.index().saturating_mul(u64::from(TILE_WIDTH)),
            )))
    }
}

impl Integrator {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The partial tiles of a tree of `size` leaves: all that [`resume`](Self::resume) needs.
    pub fn edge_tiles(size: u64) -> Vec<Tile> {
        (0..=crate::tile::MAX_TILE_LEVEL)
            .map_while(|level| {
                let count = count_at(level, size);
                (count > 0).then_some((level, count))
            })
            .filter_map(|(level, count)| {
                let width = u16::try_from(count % u64::from(TILE_WIDTH)).ok()?;
                (width > 0)
                    .then(|| Tile::new(level, count / u64::from(TILE_WIDTH), width))
                    .flatten()
            })
            .collect()
    }

    /// Resumes a tree of `size` leaves from its partial tiles (those of
    /// [`edge_tiles`](Self::edge_tiles), given as `(level, index, hashes)`).
    pub fn resume(size: u64, tiles: &[(u8, u64, Vec<Hash>)]) -> Result<Self, IntegrateError> {
        let have: BTreeMap<(u8, u64), Vec<Hash>> = tiles
            .iter()
            .map(|(l, i, h)| ((*l, *i), h.clone()))
            .collect();
        let mut rows = Vec::new();
        for level in 0..=crate::tile::MAX_TILE_LEVEL {
            let count = count_at(level, size);
            if count == 0 {
                break;
            }
            let width = usize::try_from(count % u64::from(TILE_WIDTH)).unwrap_or(0);
            if width == 0 {
                rows.push(Vec::new());
                continue;
            }
            let index = count / u64::from(TILE_WIDTH);
            let name = || {
                Tile::new(level, index, u16::try_from(width).unwrap_or(TILE_WIDTH))
                    .map(|t| t.path())
                    .unwrap_or_default()
            };
            let row = have
                .get(&(level, index))
                .ok_or_else(|| IntegrateError::MissingTile { tile: name() })?;
            if row.len() < width {
                return Err(IntegrateError::TileWidth {
                    tile: name(),
                    expected: width,
                    found: row.len(),
                });
            }
            rows.push(row.iter().take(width).copied().collect());
        }
        let reader = TileHashReader::new(EdgeTiles(&have), size);
        let builder = RootBuilder::resume(&reader, size)?;
        Ok(Integrator {
            builder,
            rows,
            full: Vec::new(),
            dirty: BTreeSet::new(),
        })
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.builder.size()
    }

    /// The tree's root.
    pub fn root(&self) -> Hash {
        self.builder.root()
    }

    /// Appends a leaf by its leaf hash.
    pub fn push_leaf_hash(&mut self, leaf: Hash) {
        let Integrator {
            builder,
            rows,
            full,
            dirty,
        } = self;
        builder.push_with(leaf, |node, hash| {
            if node.level % TILE_HEIGHT != 0 {
                return;
            }
            let level = node.level / TILE_HEIGHT;
            let l = usize::from(level);
            while rows.len() <= l {
                rows.push(Vec::new());
            }
            let Some(row) = rows.get_mut(l) else { return };
            row.push(hash);
            dirty.insert(level);
            if row.len() == usize::from(TILE_WIDTH) {
                let index = node.index / u64::from(TILE_WIDTH);
                if let Some(tile) = Tile::new(level, index, TILE_WIDTH) {
                    full.push((tile, std::mem::take(row)));
                }
            }
        });
    }

    /// The tiles that changed since the last call (or since the start): every tile completed,
    /// then the current partial tile of each level that grew.
    pub fn take_tiles(&mut self) -> Vec<(Tile, Vec<Hash>)> {
        let size = self.size();
        let mut out = std::mem::take(&mut self.full);
        for level in std::mem::take(&mut self.dirty) {
            let Some(row) = self.rows.get(usize::from(level)) else {
                continue;
            };
            let Ok(width) = u16::try_from(row.len()) else {
                continue;
            };
            if width == 0 {
                continue;
            }
            let index = count_at(level, size) / u64::from(TILE_WIDTH);
            if let Some(tile) = Tile::new(level, index, width) {
                out.push((tile, row.clone()));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;
    use crate::tile::{TileReader, tiles_for_size};
    use crate::tree::{MemoryTree, tree_root};
    use std::collections::HashMap;

    struct Stored(HashMap<(u8, u64), Vec<Hash>>);
    impl TileReader for Stored {
        fn read_tile(&self, tile: Tile) -> Result<Vec<Hash>, ReadError> {
            self.0
                .get(&(tile.level(), tile.index()))
                .cloned()
                .ok_or(ReadError::Missing(NodeId::new(0, 0)))
        }
    }

    fn leaf(i: u64) -> Hash {
        leaf_hash(format!("entry {i}").as_bytes())
    }

    /// Integrating in batches of every shape, resuming from stored tiles between batches, gives
    /// the reference root and exactly the reference tiles.
    #[test]
    fn integrated_tiles_and_roots_match_the_reference_tree() {
        for (total, batch) in [
            (1u64, 1u64),
            (255, 7),
            (256, 256),
            (257, 1),
            (70_000, 3_001),
        ] {
            let mut reference = MemoryTree::new();
            let mut stored: HashMap<(u8, u64), Vec<Hash>> = HashMap::new();
            let mut size = 0;
            while size < total {
                let edge: Vec<(u8, u64, Vec<Hash>)> = Integrator::edge_tiles(size)
                    .into_iter()
                    .map(|t| {
                        let h = stored[&(t.level(), t.index())].clone();
                        (t.level(), t.index(), h)
                    })
                    .collect();
                let mut it = Integrator::resume(size, &edge).unwrap();
                let end = (size + batch).min(total);
                for i in size..end {
                    it.push_leaf_hash(leaf(i));
                    reference.append_leaf_hash(leaf(i));
                }
                for (t, h) in it.take_tiles() {
                    assert_eq!(h.len(), usize::from(t.width()));
                    stored.insert((t.level(), t.index()), h);
                }
                size = end;
                assert_eq!(
                    it.root(),
                    tree_root(&reference, size).unwrap(),
                    "size {size}"
                );
            }
            // Every tile of the final tree is stored with the reference's hashes.
            let tiles = Stored(stored.clone());
            for t in tiles_for_size(total) {
                let got = tiles.read_tile(t).unwrap();
                let want = crate::tile::tile_hashes(&reference, t).unwrap();
                assert_eq!(
                    &got[..usize::from(t.width())],
                    &want[..],
                    "tile {}",
                    t.path()
                );
            }
        }
    }

    #[test]
    fn resume_names_a_missing_or_short_tile() {
        assert!(matches!(
            Integrator::resume(300, &[]),
            Err(IntegrateError::MissingTile { .. })
        ));
        let short = vec![(0u8, 1u64, vec![leaf(0); 3]), (1, 0, vec![leaf(0)])];
        assert!(matches!(
            Integrator::resume(300, &short),
            Err(IntegrateError::TileWidth { .. })
        ));
    }
}
