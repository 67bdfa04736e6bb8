//! The bytes of a snapshot file; `FORMAT.md` is the contract and draws the same offsets.

use bourse_engine::{ArchivedEngineImage, Engine, EngineImage};
use rkyv::api::high::HighValidator;
use rkyv::bytecheck::CheckBytes;
use rkyv::util::AlignedVec;

use crate::error::SnapshotError;
use crate::v1::{ArchivedEngineImageV1, EngineImageV1};

/// "BOURSES" and a zero byte.
pub const MAGIC: [u8; 8] = *b"BOURSES\0";
/// The version this build writes (and the newest it reads).
pub const FORMAT_VERSION: u32 = 2;
/// The oldest version this build reads: a version 1 payload (no order-key window) is converted
/// on load (`v1.rs`).
pub const FORMAT_VERSION_MIN: u32 = 1;

pub const HEADER_MAGIC_OFFSET: usize = 0;
pub const HEADER_VERSION_OFFSET: usize = 8;
pub const HEADER_FLAGS_OFFSET: usize = 12;
pub const HEADER_SEQ_OFFSET: usize = 16;
pub const HEADER_PAYLOAD_LEN_OFFSET: usize = 24;
pub const HEADER_PAYLOAD_CHECKSUM_OFFSET: usize = 32;
pub const HEADER_CHECKSUM_OFFSET: usize = 36;
pub const HEADER_RESERVED_OFFSET: usize = 40;
/// 64 bytes, so that a payload read into an aligned buffer with its header stays aligned and is
/// validated in place, without a copy.
pub const HEADER_LEN: usize = 64;
/// The alignment the archive is read at.
const PAYLOAD_ALIGN: usize = 16;
/// The largest payload a reader accepts (16 GiB), so a corrupt length cannot ask for more.
pub const PAYLOAD_LEN_MAX: u64 = 16 << 30;

/// A snapshot ready to write: the header and the `rkyv` payload, kept apart so that writing
/// does not copy the payload.
pub struct Encoded {
    pub header: [u8; HEADER_LEN],
    pub payload: AlignedVec,
}

impl Encoded {
    /// The file's bytes in one buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(HEADER_LEN + self.payload.len());
        bytes.extend_from_slice(&self.header);
        bytes.extend_from_slice(&self.payload);
        bytes
    }
}

/// A rough upper bound of the payload size, so the archive buffer does not grow by copying.
fn payload_len_estimate(image: &EngineImage) -> usize {
    let n_orders: usize = image
        .books
        .iter()
        .map(|b| b.bids.len() + b.asks.len())
        .sum();
    let text: usize = image
        .accounts
        .iter()
        .map(|a| a.name.len() + a.proof.len())
        .sum();
    4096 + image.accounts.len() * 160
        + text
        + n_orders * 96
        + image.funds_requests.len() * 80
        + image.order_keys.len() * 112
}

/// Header and payload of a snapshot of `image` taken after command `seq`.
pub fn encode(seq: u64, image: &EngineImage) -> Result<Encoded, SnapshotError> {
    let buffer = AlignedVec::with_capacity(payload_len_estimate(image));
    let payload = rkyv::api::high::to_bytes_in::<_, rkyv::rancor::Error>(image, buffer)
        .map_err(|e| SnapshotError::Encode(e.to_string()))?;
    Ok(Encoded {
        header: header(FORMAT_VERSION, seq, &payload),
        payload,
    })
}

/// The header of a payload in format `version` (only tests write a version other than
/// [`FORMAT_VERSION`]).
pub(crate) fn header(version: u32, seq: u64, payload: &[u8]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[HEADER_MAGIC_OFFSET..HEADER_VERSION_OFFSET].copy_from_slice(&MAGIC);
    h[HEADER_VERSION_OFFSET..HEADER_FLAGS_OFFSET].copy_from_slice(&version.to_le_bytes());
    // Flags (bytes 12..16) are zero in versions 1 and 2.
    h[HEADER_SEQ_OFFSET..HEADER_PAYLOAD_LEN_OFFSET].copy_from_slice(&seq.to_le_bytes());
    h[HEADER_PAYLOAD_LEN_OFFSET..HEADER_PAYLOAD_CHECKSUM_OFFSET]
        .copy_from_slice(&(payload.len() as u64).to_le_bytes());
    h[HEADER_PAYLOAD_CHECKSUM_OFFSET..HEADER_CHECKSUM_OFFSET]
        .copy_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    let checksum = crc32c::crc32c(&h[..HEADER_CHECKSUM_OFFSET]);
    h[HEADER_CHECKSUM_OFFSET..HEADER_RESERVED_OFFSET].copy_from_slice(&checksum.to_le_bytes());
    // Bytes 40..64 are reserved, zero.
    h
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&bytes[offset..offset + 4]);
    u32::from_le_bytes(raw)
}

fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[offset..offset + 8]);
    u64::from_le_bytes(raw)
}

/// Reads a whole file into a buffer aligned for the archive, so [`decode`] validates the
/// payload in place.
pub fn read_aligned(file: &mut std::fs::File) -> std::io::Result<AlignedVec<PAYLOAD_ALIGN>> {
    use std::io::Read;
    let len = file.metadata()?.len();
    let len = usize::try_from(len).map_err(|_| std::io::Error::other("file too large"))?;
    let mut buffer =
        AlignedVec::<PAYLOAD_ALIGN>::with_capacity(len.min(HEADER_LEN + PAYLOAD_LEN_MAX as usize));
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut chunk)?;
        if n == 0 {
            return Ok(buffer);
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

/// Checks the header (any version this build reads); returns the sequence number and the
/// payload.
pub fn check_header(bytes: &[u8]) -> Result<(u64, &[u8]), SnapshotError> {
    check_header_versioned(bytes).map(|(_, seq, payload)| (seq, payload))
}

/// [`check_header`], with the format version.
fn check_header_versioned(bytes: &[u8]) -> Result<(u32, u64, &[u8]), SnapshotError> {
    if bytes.len() < HEADER_LEN {
        return Err(SnapshotError::TooShort { len: bytes.len() });
    }
    let h = &bytes[..HEADER_LEN];
    if h[..HEADER_VERSION_OFFSET] != MAGIC {
        return Err(SnapshotError::BadMagic);
    }
    if crc32c::crc32c(&h[..HEADER_CHECKSUM_OFFSET]) != u32_at(h, HEADER_CHECKSUM_OFFSET) {
        return Err(SnapshotError::HeaderChecksum);
    }
    let version = u32_at(h, HEADER_VERSION_OFFSET);
    let reserved_zero = h[HEADER_RESERVED_OFFSET..].iter().all(|b| *b == 0);
    let known = (FORMAT_VERSION_MIN..=FORMAT_VERSION).contains(&version);
    if !known || u32_at(h, HEADER_FLAGS_OFFSET) != 0 || !reserved_zero {
        return Err(SnapshotError::UnsupportedVersion {
            found: version,
            oldest: FORMAT_VERSION_MIN,
            supported: FORMAT_VERSION,
        });
    }
    let seq = u64_at(h, HEADER_SEQ_OFFSET);
    let declared = u64_at(h, HEADER_PAYLOAD_LEN_OFFSET);
    if declared > PAYLOAD_LEN_MAX {
        return Err(SnapshotError::PayloadTooLarge { len: declared });
    }
    let payload = &bytes[HEADER_LEN..];
    if declared != payload.len() as u64 {
        return Err(SnapshotError::LengthMismatch {
            declared,
            actual: payload.len() as u64,
        });
    }
    Ok((version, seq, payload))
}

/// Payloads at least this long are checksummed on a second thread while this one validates
/// the archive (the two only read the bytes).
const PARALLEL_CHECK_MIN: usize = 1 << 20;

/// The payload's CRC32C against the header, and the archive (of `A`, the image type of the
/// file's version) validated with `bytecheck`; then `f` on the validated archive. The checksum
/// is reported first: a payload whose checksum fails is refused as
/// [`SnapshotError::PayloadChecksum`] whatever the archive check says.
fn with_archive<A, T>(
    bytes: &[u8],
    f: impl FnOnce(&A) -> Result<T, SnapshotError>,
) -> Result<(u64, T), SnapshotError>
where
    A: rkyv::Portable + for<'a> CheckBytes<HighValidator<'a, rkyv::rancor::Error>>,
{
    let (seq, payload) = check_header(bytes)?;
    let expected = u32_at(bytes, HEADER_PAYLOAD_CHECKSUM_OFFSET);
    // rkyv reads archived values in place, so the payload must be aligned: read from an
    // aligned buffer or a mapping (as `load_newest` does) it is; otherwise it is copied.
    let copy: AlignedVec<PAYLOAD_ALIGN>;
    let aligned = if (payload.as_ptr() as usize).is_multiple_of(PAYLOAD_ALIGN) {
        payload
    } else {
        let mut buffer = AlignedVec::with_capacity(payload.len());
        buffer.extend_from_slice(payload);
        copy = buffer;
        &copy[..]
    };
    let access = || {
        rkyv::access::<A, rkyv::rancor::Error>(aligned)
            .map_err(|e| SnapshotError::Decode(e.to_string()))
    };
    let (crc, archived) = if aligned.len() >= PARALLEL_CHECK_MIN {
        std::thread::scope(|s| {
            let crc = s.spawn(|| crc32c::crc32c(payload));
            let archived = access();
            // A panic in a checksum is not possible; treat one as a mismatch all the same.
            (crc.join().unwrap_or(!expected), archived)
        })
    } else {
        (crc32c::crc32c(payload), access())
    };
    if crc != expected {
        return Err(SnapshotError::PayloadChecksum);
    }
    Ok((seq, f(archived?)?))
}

/// Checks the header and the payload checksum, validates the archive (`bytecheck`) and
/// deserializes it into an owned image. Returns the sequence number and the image. (Loading
/// does not need the owned image: [`decode`] builds the engine from the archive directly.)
pub fn decode_image(bytes: &[u8]) -> Result<(u64, EngineImage), SnapshotError> {
    if check_header_versioned(bytes)?.0 == 1 {
        return with_archive(bytes, |archived: &ArchivedEngineImageV1| {
            deserialize_v1(archived).map(EngineImage::from)
        });
    }
    with_archive(bytes, |archived: &ArchivedEngineImage| {
        rkyv::deserialize::<EngineImage, rkyv::rancor::Error>(archived)
            .map_err(|e| SnapshotError::Decode(e.to_string()))
    })
}

fn deserialize_v1(archived: &ArchivedEngineImageV1) -> Result<EngineImageV1, SnapshotError> {
    rkyv::deserialize::<EngineImageV1, rkyv::rancor::Error>(archived)
        .map_err(|e| SnapshotError::Decode(e.to_string()))
}

/// Checks the header and the payload checksum, validates the archive (`bytecheck`), then
/// builds the engine straight from the archived image with [`Engine::from_archived`] (which
/// checks its meaning). Returns the sequence number and the engine. A version 1 file is
/// deserialized, converted (an empty order-key window) and built with [`Engine::from_image`].
pub fn decode(bytes: &[u8]) -> Result<(u64, Engine), SnapshotError> {
    if check_header_versioned(bytes)?.0 == 1 {
        return with_archive(bytes, |archived: &ArchivedEngineImageV1| {
            let image = EngineImage::from(deserialize_v1(archived)?);
            Ok(Engine::from_image(image)?)
        });
    }
    with_archive(bytes, |archived: &ArchivedEngineImage| {
        Ok(Engine::from_archived(archived)?)
    })
}

/// [`decode`] of bytes at any alignment (a snapshot file received over the network): they
/// are copied into an aligned buffer first.
pub fn decode_unaligned(bytes: &[u8]) -> Result<(u64, Engine), SnapshotError> {
    let mut aligned = AlignedVec::<PAYLOAD_ALIGN>::with_capacity(bytes.len());
    aligned.extend_from_slice(bytes);
    decode(&aligned)
}

#[cfg(test)]
mod tests {
    use bourse_engine::{
        AccountId, Amount, AssetCode, AssetId, Command, CommandKind, CreateAccount, FundsMethod,
        FundsRequest, Limits, ORDER_KEYS_MAX, ProfileStatus, RequestId, TokenHash,
    };

    use super::*;
    use crate::v1::LimitsImageV1;

    #[test]
    fn header_fields_tile_the_header() {
        let fields = [
            (HEADER_MAGIC_OFFSET, 8),
            (HEADER_VERSION_OFFSET, 4),
            (HEADER_FLAGS_OFFSET, 4),
            (HEADER_SEQ_OFFSET, 8),
            (HEADER_PAYLOAD_LEN_OFFSET, 8),
            (HEADER_PAYLOAD_CHECKSUM_OFFSET, 4),
            (HEADER_CHECKSUM_OFFSET, 4),
            (HEADER_RESERVED_OFFSET, 24),
        ];
        let mut end = 0;
        for (offset, size) in fields {
            assert_eq!(offset, end);
            end = offset + size;
        }
        assert_eq!(end, HEADER_LEN);
        assert_eq!(HEADER_LEN % PAYLOAD_ALIGN, 0);
    }

    // ----- version 1 (before the order-key window) -----------------------------------------

    /// An engine with an account, a deposit and a remembered funds request.
    fn engine() -> Engine {
        let mut engine = Engine::new(Limits {
            accounts_max: 100,
            ..Limits::default()
        });
        let kinds = [
            CommandKind::AddAsset {
                code: AssetCode::new("USD").unwrap(),
                scale: 2,
            },
            CommandKind::create_account(CreateAccount {
                name: "ada".into(),
                proof: "passport:1".into(),
                currency_preference: AssetCode::new("USD").unwrap(),
                token_hash: TokenHash([1; 32]),
                initial_status: ProfileStatus::Verified,
            }),
            CommandKind::Deposit(FundsRequest {
                account: AccountId::new(1),
                asset: AssetId::new(0),
                amount: Amount::from_minor(5_000),
                request_id: RequestId::new("d-1").unwrap(),
                method: FundsMethod::Upi,
            }),
        ];
        for (seq, kind) in (1u64..).zip(kinds) {
            let command = Command {
                seq,
                timestamp_ms: 1_700_000_000_000,
                kind,
            };
            engine.apply(&command, &mut Vec::new()).unwrap();
        }
        engine
    }

    /// The version 1 image of a state without remembered order keys.
    fn v1_image(image: EngineImage) -> EngineImageV1 {
        assert!(image.order_keys.is_empty());
        let l = image.limits;
        EngineImageV1 {
            limits: LimitsImageV1 {
                accounts_max: l.accounts_max,
                assets_max: l.assets_max,
                products_max: l.products_max,
                open_orders_per_account_max: l.open_orders_per_account_max,
                orders_per_book_max: l.orders_per_book_max,
                orders_total_max: l.orders_total_max,
                bookmarks_per_account_max: l.bookmarks_per_account_max,
                funds_requests_per_account_max: l.funds_requests_per_account_max,
            },
            assets: image.assets,
            products: image.products,
            accounts: image.accounts,
            books: image.books,
            funds_requests: image.funds_requests,
            next_order_id: image.next_order_id,
            event_seq: image.event_seq,
            clock_ms: image.clock_ms,
        }
    }

    fn file(version: u32, payload: &[u8]) -> Vec<u8> {
        let mut bytes = header(version, 3, payload).to_vec();
        bytes.extend_from_slice(payload);
        bytes
    }

    #[test]
    fn a_version_1_file_loads_with_an_empty_window() {
        let original = engine();
        let payload =
            rkyv::to_bytes::<rkyv::rancor::Error>(&v1_image(original.to_image())).unwrap();
        let bytes = file(1, &payload);
        let (seq, loaded) = decode(&bytes).unwrap();
        assert_eq!(seq, 3);
        assert_eq!(loaded.state_hash(), original.state_hash());
        assert_eq!(loaded.to_image(), original.to_image());
        assert_eq!(loaded.limits().order_keys_max, ORDER_KEYS_MAX);
        assert_eq!(loaded.limits().accounts_max, 100);
        let (_, image) = decode_image(&bytes).unwrap();
        assert_eq!(image, original.to_image());
    }

    #[test]
    fn the_version_decides_how_the_payload_is_read() {
        let original = engine();
        let v1 = rkyv::to_bytes::<rkyv::rancor::Error>(&v1_image(original.to_image())).unwrap();
        let v2 = rkyv::to_bytes::<rkyv::rancor::Error>(&original.to_image()).unwrap();
        assert!(decode(&file(FORMAT_VERSION, &v2)).is_ok());
        // A payload read as the other version's image does not validate.
        assert!(matches!(
            decode(&file(FORMAT_VERSION, &v1)),
            Err(SnapshotError::Decode(_) | SnapshotError::Image(_))
        ));
        assert!(matches!(
            decode(&file(1, &v2)),
            Err(SnapshotError::Decode(_) | SnapshotError::Image(_))
        ));
        for version in [0, FORMAT_VERSION + 1] {
            match decode(&file(version, &v2)) {
                Err(SnapshotError::UnsupportedVersion {
                    found,
                    oldest,
                    supported,
                }) => assert_eq!((found, oldest, supported), (version, 1, FORMAT_VERSION)),
                other => panic!("version {version}: {other:?}"),
            }
        }
    }
}
