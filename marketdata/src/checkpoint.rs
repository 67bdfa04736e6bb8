//! The market-data checkpoint: the whole in-memory state and the tick log's next sequence
//! number, written atomically to `market.ckpt` (temporary file, fsync, rename, fsync of the
//! directory).
//!
//! Layout: magic `BRSMKT01` (8 bytes), payload length u64, CRC-32C of the payload u32, the
//! layout's version u32 (0 for the first, 2 since products have origins), then the payload: an
//! `rkyv` archive of `Wire` (`WireV1` for version 0), whose per-product state is a flat array
//! of [`STRIDE`] `u64`s per product (the order is in `encode_state`).
//!
//! A first-version checkpoint has no origins: its products are taken as the feed's
//! partition 0's, in id order, so a node that upgrades lists them in the order it did.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use crate::MarketError;
use crate::candle::{Candle, N_INTERVALS, ProductCandles, SeqWindow};
use crate::catalogue::Origin;
use crate::record::{CandleLink, Link};
use crate::tick::{Key, ProductDef, Source, Symbol};

const MAGIC: &[u8; 8] = b"BRSMKT01";
const HEADER_LEN: usize = 24;
const FILE_NAME: &str = "market.ckpt";
const VERSION: u32 = 1;
/// The header's layout version (the 4 bytes after the checksum).
const LAYOUT: u32 = 2;
/// `Wire::origins` of a product Bourse's engine defined.
const ORIGIN_BOURSE: u32 = u32::MAX;
const CANDLE_WORDS: usize = 11;
/// The market-data state of one product.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProductState {
    /// Open candles, duplicate windows, newest time.
    pub candles: ProductCandles,
    /// The product's newest tick in the tick log.
    pub tick_head: Link,
    /// The product's newest stored candle of each interval.
    pub candle_heads: [CandleLink; N_INTERVALS],
}

/// `u64`s per product: 7 candles, 2 windows, newest time, the tick link, 7 candle links.
pub const STRIDE: usize = N_INTERVALS * CANDLE_WORDS + 4 + 1 + 3 + N_INTERVALS * 2;

/// The state a checkpoint holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// Every product, in id order.
    pub products: Vec<ProductDef>,
    /// Every product's origin, in id order.
    pub origins: Vec<Origin>,
    /// Every product's state, in id order.
    pub states: Vec<ProductState>,
    /// Offsets to resume from.
    pub offsets: BTreeMap<(Source, i32), i64>,
    /// Newest exchange time.
    pub newest_ts: i64,
    /// The tick log's next sequence number when it was taken.
    pub tick_next: u64,
    /// Newest time of each segment: the tick log's, then each candle log's.
    pub segments: Vec<Vec<(u64, i64)>>,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct Wire {
    version: u32,
    products: Vec<(String, String, String, i64)>,
    origins: Vec<u32>,
    states: Vec<u64>,
    offsets: Vec<(u8, i32, i64)>,
    newest_ts: i64,
    tick_next: u64,
    segments: Vec<Vec<(u64, i64)>>,
}

/// The first layout: no origins.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct WireV1 {
    version: u32,
    products: Vec<(String, String, String, i64)>,
    states: Vec<u64>,
    offsets: Vec<(u8, i32, i64)>,
    newest_ts: i64,
    tick_next: u64,
    segments: Vec<Vec<(u64, i64)>>,
}

fn encode_state(state: &ProductState, out: &mut Vec<u64>) {
    for c in &state.candles.open {
        out.extend([
            c.start as u64,
            c.open as u64,
            c.high as u64,
            c.low as u64,
            c.close as u64,
            c.volume,
            u64::from(c.count),
            c.first.ts as u64,
            c.first.tag,
            c.last.ts as u64,
            c.last.tag,
        ]);
    }
    let (f, b) = (state.candles.feed, state.candles.bourse);
    out.extend([
        f.max,
        f.below,
        b.max,
        b.below,
        state.candles.newest_ts as u64,
    ]);
    let t = state.tick_head;
    out.extend([t.segment, u64::from(t.offset), u64::from(t.item)]);
    for l in state.candle_heads.map(CandleLink::link) {
        out.extend([l.segment, u64::from(l.offset)]);
    }
}

fn decode_state(w: &[u64]) -> ProductState {
    let mut state = ProductState::default();
    for (i, c) in state.candles.open.iter_mut().enumerate() {
        let x = &w[i * CANDLE_WORDS..(i + 1) * CANDLE_WORDS];
        *c = Candle {
            start: x[0] as i64,
            open: x[1] as i64,
            high: x[2] as i64,
            low: x[3] as i64,
            close: x[4] as i64,
            volume: x[5],
            count: x[6] as u32,
            first: Key {
                ts: x[7] as i64,
                tag: x[8],
            },
            last: Key {
                ts: x[9] as i64,
                tag: x[10],
            },
        };
    }
    let mut at = N_INTERVALS * CANDLE_WORDS;
    state.candles.feed = SeqWindow {
        max: w[at],
        below: w[at + 1],
    };
    state.candles.bourse = SeqWindow {
        max: w[at + 2],
        below: w[at + 3],
    };
    state.candles.newest_ts = w[at + 4] as i64;
    at += 5;
    state.tick_head = Link {
        segment: w[at],
        offset: w[at + 1] as u32,
        item: w[at + 2] as u32,
    };
    at += 3;
    for (i, l) in state.candle_heads.iter_mut().enumerate() {
        *l = Link {
            segment: w[at + 2 * i],
            offset: w[at + 2 * i + 1] as u32,
            item: 0,
        }
        .into();
    }
    state
}

/// Encodes an image (header and payload).
pub fn encode(image: &Image) -> Result<Vec<u8>, MarketError> {
    let (header, payload) = encode_parts(image)?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Products as the wire keeps them: symbol, name, currency, tick size.
fn wire_products(products: &[ProductDef]) -> Vec<(String, String, String, i64)> {
    products
        .iter()
        .map(|p| {
            (
                p.symbol.to_string(),
                p.name.clone(),
                p.currency.to_string(),
                p.tick_size,
            )
        })
        .collect()
}

/// The header and the payload of an image, apart (a file gets them one after the other, with
/// no copy of the payload).
fn encode_parts(image: &Image) -> Result<([u8; HEADER_LEN], rkyv::util::AlignedVec), MarketError> {
    let mut states = Vec::with_capacity(image.states.len() * STRIDE);
    for state in &image.states {
        encode_state(state, &mut states);
    }
    let wire = Wire {
        version: VERSION,
        products: wire_products(&image.products),
        origins: image
            .origins
            .iter()
            .map(|o| match o {
                Origin::Feed(p) => (*p).min(ORIGIN_BOURSE - 1),
                Origin::Bourse => ORIGIN_BOURSE,
            })
            .collect(),
        states,
        offsets: image
            .offsets
            .iter()
            .map(|((s, p), o)| (*s as u8, *p, *o))
            .collect(),
        newest_ts: image.newest_ts,
        tick_next: image.tick_next,
        segments: image.segments.clone(),
    };
    let payload = rkyv::to_bytes::<rkyv::rancor::Error>(&wire)
        .map_err(|e| MarketError::Checkpoint(format!("encode: {e}")))?;
    let mut header = [0; HEADER_LEN];
    header[..8].copy_from_slice(MAGIC);
    header[8..16].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    header[16..20].copy_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    header[20..].copy_from_slice(&LAYOUT.to_le_bytes());
    Ok((header, payload))
}

/// Decodes and checks an image.
pub fn decode(bytes: &[u8]) -> Result<Image, MarketError> {
    let bad = |what: &str| MarketError::Checkpoint(what.to_string());
    if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
        return Err(bad("not a market checkpoint (bad magic)"));
    }
    let len = u64::from_le_bytes(std::array::from_fn(|i| bytes[8 + i])) as usize;
    let crc = u32::from_le_bytes(std::array::from_fn(|i| bytes[16 + i]));
    let payload = bytes
        .get(HEADER_LEN..)
        .filter(|p| p.len() == len)
        .ok_or_else(|| bad("truncated"))?;
    if crc32c::crc32c(payload) != crc {
        return Err(bad("checksum mismatch"));
    }
    let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(payload.len());
    aligned.extend_from_slice(payload);
    let decode_error = |e: rkyv::rancor::Error| MarketError::Checkpoint(format!("decode: {e}"));
    let wire = match u32::from_le_bytes(std::array::from_fn(|i| bytes[20 + i])) {
        0 => {
            let v1 =
                rkyv::from_bytes::<WireV1, rkyv::rancor::Error>(&aligned).map_err(decode_error)?;
            Wire {
                version: v1.version,
                origins: vec![0; v1.products.len()],
                products: v1.products,
                states: v1.states,
                offsets: v1.offsets,
                newest_ts: v1.newest_ts,
                tick_next: v1.tick_next,
                segments: v1.segments,
            }
        }
        LAYOUT => rkyv::from_bytes::<Wire, rkyv::rancor::Error>(&aligned).map_err(decode_error)?,
        other => return Err(bad(&format!("unknown checkpoint layout {other}"))),
    };
    if wire.version != VERSION {
        return Err(MarketError::Checkpoint(format!(
            "checkpoint version {} is not {VERSION}",
            wire.version
        )));
    }
    if wire.states.len() != wire.products.len() * STRIDE
        || wire.origins.len() != wire.products.len()
        || wire.segments.len() != N_INTERVALS + 1
    {
        return Err(bad("state size does not match the products"));
    }
    let products = wire
        .products
        .iter()
        .map(|(s, n, c, t)| {
            Some(ProductDef {
                symbol: Symbol::new(s)?,
                name: n.clone(),
                currency: Symbol::new(c)?,
                tick_size: *t,
            })
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| bad("invalid symbol"))?;
    let offsets = wire
        .offsets
        .iter()
        .map(|(s, p, o)| Some(((Source::from_u8(*s)?, *p), *o)))
        .collect::<Option<BTreeMap<_, _>>>()
        .ok_or_else(|| bad("invalid source"))?;
    let origins = wire
        .origins
        .iter()
        .map(|&o| match o {
            ORIGIN_BOURSE => Origin::Bourse,
            p => Origin::Feed(p),
        })
        .collect();
    Ok(Image {
        products,
        origins,
        states: wire.states.chunks_exact(STRIDE).map(decode_state).collect(),
        offsets,
        newest_ts: wire.newest_ts,
        tick_next: wire.tick_next,
        segments: wire.segments,
    })
}

/// Writes the checkpoint atomically.
pub fn save(dir: &Path, image: &Image) -> Result<(), MarketError> {
    let (header, payload) = encode_parts(image)?;
    let path = dir.join(FILE_NAME);
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&header)?;
        file.write_all(&payload)?;
        file.sync_all()
    };
    write().map_err(|e| MarketError::io("write checkpoint", &tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| MarketError::io("rename checkpoint", &path, e))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| MarketError::io("sync market directory", dir, e))
}

/// Loads the checkpoint if there is one.
pub fn load(dir: &Path) -> Result<Option<Image>, MarketError> {
    let path = dir.join(FILE_NAME);
    match std::fs::read(&path) {
        Ok(bytes) => decode(&bytes).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(MarketError::io("read checkpoint", &path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> Image {
        let def = |s: &str| ProductDef {
            symbol: Symbol::new(s).unwrap(),
            name: format!("{s} Inc."),
            currency: Symbol::new("USD").unwrap(),
            tick_size: 1_000_000,
        };
        Image {
            products: vec![def("A"), def("B"), def("C")],
            origins: vec![Origin::Feed(3), Origin::Bourse, Origin::Feed(0)],
            states: vec![ProductState::default(); 3],
            offsets: BTreeMap::from([((Source::Feed, 3), 7), ((Source::Bourse, 0), 2)]),
            newest_ts: 42,
            tick_next: 5,
            segments: vec![vec![(1, 40)]; N_INTERVALS + 1],
        }
    }

    #[test]
    fn an_image_comes_back_with_its_origins() {
        let image = image();
        assert_eq!(decode(&encode(&image).unwrap()).unwrap(), image);
    }

    #[test]
    fn a_first_layout_checkpoint_reads_as_partition_0s() {
        let image = image();
        let mut bytes = encode(&image).unwrap();
        // The same image in the first layout: no origins, a zero layout word.
        let v1 = WireV1 {
            version: VERSION,
            products: wire_products(&image.products),
            states: image.states.iter().fold(Vec::new(), |mut out, s| {
                encode_state(s, &mut out);
                out
            }),
            offsets: vec![(0, 3, 7), (1, 0, 2)],
            newest_ts: 42,
            tick_next: 5,
            segments: image.segments.clone(),
        };
        let payload = rkyv::to_bytes::<rkyv::rancor::Error>(&v1).unwrap();
        bytes.truncate(HEADER_LEN);
        bytes[8..16].copy_from_slice(&(payload.len() as u64).to_le_bytes());
        bytes[16..20].copy_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
        bytes[20..24].copy_from_slice(&[0; 4]);
        bytes.extend_from_slice(&payload);
        let read = decode(&bytes).unwrap();
        assert_eq!(read.origins, vec![Origin::Feed(0); 3]);
        assert_eq!(
            Image {
                origins: image.origins.clone(),
                ..read
            },
            image
        );
        // An unknown layout is refused.
        bytes[20] = 9;
        assert!(decode(&bytes).unwrap_err().to_string().contains("layout 9"));
    }
}
