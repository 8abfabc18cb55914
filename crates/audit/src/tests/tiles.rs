//! C2SP tlog-tiles: examples from the specification and from transparency-dev/trillian-tessera
//! `api/layout/paths_test.go`, and tiles as a store for proofs.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{Rng, entry};
use crate::hash::{Hash, NodeId};
use crate::tile::{
    EntryBundle, Tile, TileError, TileHashReader, TileReader, decode_entry_bundle, decode_tile,
    encode_entry_bundle, encode_tile, format_tile_index, locate_hash, new_tiles, tile_hashes,
    tiles_for_size,
};
use crate::tree::{
    HashReader, MemoryTree, ReadError, consistency_proof, consistency_proof_nodes, inclusion_proof,
    inclusion_proof_nodes, tree_root, tree_root_nodes,
};

#[test]
fn tile_index_format() {
    assert_eq!(format_tile_index(1_234_067), "x001/x234/067");
    assert_eq!(format_tile_index(0), "000");
    assert_eq!(format_tile_index(5), "005");
    assert_eq!(format_tile_index(999), "999");
    assert_eq!(format_tile_index(1000), "x001/000");
    assert_eq!(format_tile_index(123_456_789_000), "x123/x456/x789/000");
}

#[test]
fn tile_paths() {
    let full = |level, index| Tile::new(level, index, 256).unwrap().path();
    assert_eq!(full(0, 1_234_067), "tile/0/x001/x234/067");
    assert_eq!(full(15, 455_667), "tile/15/x455/667");
    assert_eq!(full(3, 1_234_567), "tile/3/x001/x234/567");
    assert_eq!(full(15, 123_456_789), "tile/15/x123/x456/789");
    let in_tree = |level, index, size| Tile::in_tree(level, index, size).unwrap().path();
    assert_eq!(in_tree(0, 0, 256), "tile/0/000");
    assert_eq!(in_tree(0, 0, 255), "tile/0/000.p/255");
    assert_eq!(in_tree(1, 0, u64::MAX), "tile/1/000");
    assert_eq!(in_tree(1, 0, 256), "tile/1/000.p/1");
    assert_eq!(in_tree(1, 0, 1024), "tile/1/000.p/4");
    assert_eq!(Tile::in_tree(0, 0, 0), None);
    assert_eq!(Tile::in_tree(0, 1, 256), None);
    assert_eq!(Tile::new(64, 0, 1), None);
    assert_eq!(Tile::new(0, 0, 0), None);
    assert_eq!(Tile::new(0, 0, 257), None);
}

#[test]
fn entry_bundle_paths() {
    let path = |entry, size| EntryBundle::for_entry(entry, size).unwrap().path();
    assert_eq!(path(0, 256), "tile/entries/000");
    assert_eq!(path(255, 256), "tile/entries/000");
    assert_eq!(path(251, 255), "tile/entries/000.p/255");
    assert_eq!(path(256, 512), "tile/entries/001");
    assert_eq!(path(256, 257), "tile/entries/001.p/1");
    assert_eq!(path(0, 8), "tile/entries/000.p/8");
    assert_eq!(
        path(123_456_789 * 256, 123_456_790 * 256),
        "tile/entries/x123/x456/789"
    );
    assert_eq!(EntryBundle::for_entry(8, 8), None);
    let b = EntryBundle::for_entry(300, 1000).unwrap();
    assert_eq!(b.first_entry(), 256);
    assert_eq!(b.tile().entry_bundle(), Some(b));
    assert_eq!(
        EntryBundle::parse_path("tile/entries/x001/x234/067.p/89").unwrap(),
        Tile::new(0, 1_234_067, 89).unwrap().entry_bundle().unwrap()
    );
    assert!(EntryBundle::parse_path("tile/0/000").is_err());
}

#[test]
fn tile_path_parsing() {
    let ok = [
        ("0", "x001/x234/067", 0, 1_234_067, 256),
        ("0", "x001/x234/067.p/89", 0, 1_234_067, 89),
        (
            "63",
            "x999/x999/x999/x999/x999/999.p/255",
            63,
            999_999_999_999_999_999,
            255,
        ),
        ("0", "001", 0, 1, 256),
    ];
    for (level, index, l, n, w) in ok {
        let path = format!("tile/{level}/{index}");
        let tile = Tile::parse_path(&path).unwrap();
        assert_eq!(tile, Tile::new(l, n, w).unwrap());
        assert_eq!(tile.path(), path);
    }
    let bad = [
        ("0", "x001/x234/067.p/"),
        ("0", "x001/x234/067.p"),
        ("0", "x001/x234/"),
        ("0", "x001/x234"),
        ("0", "x001/"),
        ("0", "x001"),
        ("1", "x001/.p/abc"),
        ("64", "x001/002"),
        ("-1", "x001/002"),
        ("abc", "x001/002"),
        ("8", "001/002"),
        ("8", "x001/0002"),
        ("8", "x001/-002"),
        ("8", "x001/002.p/256"),
        // Non-canonical spellings.
        ("01", "001"),
        ("0", "x000/001"),
        ("0", "001.p/0"),
        ("0", "001.p/08"),
        ("0", "1"),
    ];
    for (level, index) in bad {
        let path = format!("tile/{level}/{index}");
        assert!(
            matches!(Tile::parse_path(&path), Err(TileError::Path(_))),
            "accepted {path}"
        );
    }
}

#[test]
fn tiles_of_a_tree_follow_the_spec_examples() {
    // "a tree of size 70,000 will be represented by 273 full level 0 tiles, one partial level 0
    // tile of width 112, one full level 1 tile, one partial level 1 tile of width 17, and one
    // partial level 2 tile of width 1."
    let tiles: Vec<Tile> = tiles_for_size(70_000).collect();
    let count = |level: u8, width: u16| {
        tiles
            .iter()
            .filter(|t| t.level() == level && t.width() == width)
            .count()
    };
    assert_eq!(tiles.len(), 273 + 1 + 1 + 1 + 1);
    assert_eq!(count(0, 256), 273);
    assert_eq!(count(0, 112), 1);
    assert_eq!(count(1, 256), 1);
    assert_eq!(count(1, 17), 1);
    assert_eq!(count(2, 1), 1);
    // "a tree of size 256 will be represented by a full level 0 tile and a partial level 1 tile
    // of width 1."
    let paths: Vec<String> = tiles_for_size(256).map(|t| t.path()).collect();
    assert_eq!(paths, ["tile/0/000", "tile/1/000.p/1"]);
    assert_eq!(tiles_for_size(0).count(), 0);
    let paths: Vec<String> = tiles_for_size(1).map(|t| t.path()).collect();
    assert_eq!(paths, ["tile/0/000.p/1"]);
}

#[test]
fn new_tiles_are_the_difference() {
    let mut rng = Rng::new(8);
    let mut pairs = vec![
        (0, 0),
        (0, 1),
        (255, 256),
        (256, 257),
        (65535, 65536),
        (1, 70_000),
    ];
    for _ in 0..200 {
        let a = rng.below(200_000);
        let limit = if rng.below(2) == 0 { 600 } else { 100_000 };
        let b = a + rng.below(limit);
        pairs.push((a, b));
    }
    for (old, new) in pairs {
        let before: BTreeSet<Tile> = tiles_for_size(old).collect();
        let want: Vec<Tile> = tiles_for_size(new)
            .filter(|t| !before.contains(t))
            .collect();
        let got: Vec<Tile> = new_tiles(old, new).collect();
        assert_eq!(got, want, "{old} → {new}");
    }
}

#[test]
fn hash_locations() {
    let loc = locate_hash(NodeId::new(0, 1_234_067 * 256 + 5)).unwrap();
    assert_eq!(
        (loc.tile_level, loc.tile_index, loc.start, loc.count),
        (0, 1_234_067, 5, 1)
    );
    // Level 8 nodes are the hashes of level-1 tiles.
    let loc = locate_hash(NodeId::new(8, 300)).unwrap();
    assert_eq!(
        (loc.tile_level, loc.tile_index, loc.start, loc.count),
        (1, 1, 44, 1)
    );
    // Level 3 node 33 covers leaves 264..272: positions 8..16 of level-0 tile 1.
    let loc = locate_hash(NodeId::new(3, 33)).unwrap();
    assert_eq!(
        (loc.tile_level, loc.tile_index, loc.start, loc.count),
        (0, 1, 8, 8)
    );
    assert_eq!(loc.min_width(), 16);
    // Level 7 node: the whole bottom half or top half of a tile.
    let loc = locate_hash(NodeId::new(7, 3)).unwrap();
    assert_eq!(
        (loc.tile_level, loc.tile_index, loc.start, loc.count),
        (0, 1, 128, 128)
    );
    assert_eq!(locate_hash(NodeId::new(64, 0)), None);
}

/// Tiles kept in a map, as a store would keep them.
struct TileStore(HashMap<(u8, u64), Vec<u8>>);

impl TileStore {
    fn of(tree: &MemoryTree) -> Self {
        let mut m = HashMap::new();
        for tile in tiles_for_size(tree.size()) {
            let data = encode_tile(&tile_hashes(tree, tile).unwrap());
            assert_eq!(data.len(), usize::from(tile.width()) * 32);
            m.insert((tile.level(), tile.index()), data);
        }
        TileStore(m)
    }
}

impl TileReader for TileStore {
    fn read_tile(&self, tile: Tile) -> Result<Vec<Hash>, ReadError> {
        // The store keeps the widest version of each tile; decoding checks it.
        let data = self
            .0
            .get(&(tile.level(), tile.index()))
            .ok_or(ReadError::Missing(NodeId::new(
                tile.level() * 8,
                tile.index() * 256,
            )))?;
        let stored = Tile::new(tile.level(), tile.index(), (data.len() / 32) as u16).unwrap();
        Ok(decode_tile(stored, data).unwrap())
    }
}

#[test]
fn proofs_from_tiles_equal_proofs_from_the_tree() {
    let size = 70_000;
    let tree = MemoryTree::from_entries((0..size).map(entry));
    let store = TileStore::of(&tree);
    let mut rng = Rng::new(70_000);
    // Every stored node of some sizes, and proofs at sizes up to the store's.
    for n in [size, 65_536, 65_535, 256 * 256 + 257, 513, 256, 255, 1] {
        let tiles = TileHashReader::new(&store, n);
        assert_eq!(tree_root(&tiles, n).unwrap(), tree.root_at(n).unwrap());
        for _ in 0..40 {
            let level = rng.below(17) as u8;
            let count = n >> level;
            if count == 0 {
                assert!(tiles.read_hash(NodeId::new(level, 0)).is_err());
                continue;
            }
            let node = NodeId::new(level, rng.below(count));
            assert_eq!(
                tiles.read_hash(node).unwrap(),
                tree.read_hash(node).unwrap(),
                "{node}"
            );
            assert!(tiles.read_hash(NodeId::new(level, count)).is_err());
        }
        for _ in 0..30 {
            let index = rng.below(n);
            assert_eq!(
                inclusion_proof(&tiles, index, n).unwrap(),
                tree.inclusion_proof(index, n).unwrap()
            );
            let m = rng.below(n + 1);
            assert_eq!(
                consistency_proof(&tiles, m, n).unwrap(),
                tree.consistency_proof(m, n).unwrap()
            );
        }
    }
    // A store that lost a tile cannot serve the hashes in it.
    let mut broken = TileStore::of(&tree);
    broken.0.remove(&(1, 0));
    let tiles = TileHashReader::new(&broken, size);
    assert!(tiles.read_hash(NodeId::new(8, 3)).is_err());
    assert!(inclusion_proof(&tiles, 0, size).is_err());
    // The root does not need that tile.
    assert_eq!(tree_root(&tiles, size).unwrap(), tree.root());
}

#[test]
fn proofs_from_listed_nodes() {
    let tree = MemoryTree::from_entries((0..1000).map(entry));
    let mut rng = Rng::new(1000);
    for _ in 0..200 {
        let n = 1 + rng.below(1000);
        let index = rng.below(n);
        let m = rng.below(n + 1);
        let fetch = |nodes: Vec<NodeId>| -> BTreeMap<NodeId, Hash> {
            let mut sorted = nodes.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted, nodes, "listed once each, in order");
            nodes
                .into_iter()
                .map(|node| {
                    assert!(node.is_in_tree(n), "{node} is not complete in size {n}");
                    (node, tree.read_hash(node).unwrap())
                })
                .collect()
        };
        let map = fetch(inclusion_proof_nodes(index, n).unwrap());
        assert_eq!(
            inclusion_proof(&map, index, n).unwrap(),
            tree.inclusion_proof(index, n).unwrap()
        );
        let map = fetch(consistency_proof_nodes(m, n).unwrap());
        assert_eq!(
            consistency_proof(&map, m, n).unwrap(),
            tree.consistency_proof(m, n).unwrap()
        );
        let nodes = tree_root_nodes(n);
        assert_eq!(nodes.len() as u32, n.count_ones());
        let map: HashMap<NodeId, Hash> = fetch(nodes).into_iter().collect();
        assert_eq!(tree_root(&map, n).unwrap(), tree.root_at(n).unwrap());
    }
    assert!(inclusion_proof_nodes(5, 5).is_err());
    assert!(consistency_proof_nodes(6, 5).is_err());
}

#[test]
fn tile_and_bundle_bodies() {
    let tree = MemoryTree::from_entries((0..300).map(entry));
    let tile = Tile::in_tree(0, 1, 300).unwrap();
    assert_eq!(tile.width(), 44);
    let hashes = tile_hashes(&tree, tile).unwrap();
    let data = encode_tile(&hashes);
    assert_eq!(decode_tile(tile, &data).unwrap(), hashes);
    assert!(matches!(
        decode_tile(tile, &data[..32 * 43]),
        Err(TileError::Width { .. })
    ));
    assert!(matches!(
        decode_tile(tile, &data[..33]),
        Err(TileError::Data(33))
    ));
    assert!(matches!(decode_tile(tile, &[]), Err(TileError::Data(0))));

    let entries: Vec<Vec<u8>> = (256..300).map(entry).chain([vec![]]).collect();
    let bundle = encode_entry_bundle(&entries).unwrap();
    assert_eq!(&bundle[..2], &(entries[0].len() as u16).to_be_bytes());
    assert_eq!(decode_entry_bundle(&bundle).unwrap(), entries);
    assert!(decode_entry_bundle(&bundle[..bundle.len() - 1]).is_err());
    assert!(decode_entry_bundle(&[0]).is_err());
    assert_eq!(decode_entry_bundle(&[]).unwrap(), Vec::<Vec<u8>>::new());
    assert!(matches!(
        encode_entry_bundle([vec![0u8; 65_536]]),
        Err(TileError::EntryTooLarge {
            index: 0,
            len: 65_536
        })
    ));
    assert!(encode_entry_bundle([vec![0u8; 65_535]]).is_ok());
}
