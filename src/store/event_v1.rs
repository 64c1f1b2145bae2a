//! A hand-written decoder for the event bytes of record version 1 (bincode 2,
//! `config::standard()`, the serde layout of [`Event`]), for the events a
//! replay meets by the million: account opened, configuration changed,
//! topped up, account closed.
//!
//! It is an optimisation only. It answers `None` for whatever it does not
//! decode exactly as serde would — a price list (rare, large), an encoding
//! serde accepts in another form, damaged bytes — and the caller then
//! decodes with serde, which also words the error. When it answers
//! `Some(event)`, serde gives the same event (tests below, on generated
//! histories and on every one-byte damage of their records).
//!
//! Layout reminders (bincode 2 standard): integers are varints (a byte
//! ≤ 250 is the value; 251/252/253/254 announce a little-endian u16/u32/
//! u64/u128), signed ones zigzag-encoded first; a string or sequence is a
//! varint length then its items; `Option` is a byte 0/1 then the value; an
//! enum is its variant index (u32) then its fields; a struct is its fields
//! in order.

use crate::domain::{Event, EventBody, Hosting, LicenseLine, Nano};
use smallvec::SmallVec;

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    #[inline]
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    /// A varint of at most `max_marker`'s width (252: u32, 253: u64, 254: u128).
    #[inline]
    fn varint(&mut self, max_marker: u8) -> Option<u128> {
        let b = self.byte()?;
        if b <= 250 {
            return Some(u128::from(b));
        }
        if b > max_marker {
            return None;
        }
        Some(match b {
            251 => u128::from(u16::from_le_bytes(self.array()?)),
            252 => u128::from(u32::from_le_bytes(self.array()?)),
            253 => u128::from(u64::from_le_bytes(self.array()?)),
            254 => u128::from_le_bytes(self.array()?),
            _ => return None,
        })
    }

    #[inline]
    fn u32(&mut self) -> Option<u32> {
        self.varint(252).map(|v| v as u32)
    }

    #[inline]
    fn len(&mut self) -> Option<usize> {
        usize::try_from(self.varint(253)?).ok()
    }

    #[inline]
    fn i64(&mut self) -> Option<i64> {
        let n = self.varint(253)? as u64;
        Some(if n & 1 == 0 {
            (n >> 1) as i64
        } else {
            !((n >> 1) as i64)
        })
    }

    #[inline]
    fn i128(&mut self) -> Option<i128> {
        let n = self.varint(254)?;
        Some(if n & 1 == 0 {
            (n >> 1) as i128
        } else {
            !((n >> 1) as i128)
        })
    }

    #[inline]
    fn str(&mut self) -> Option<&'a str> {
        let n = self.len()?;
        std::str::from_utf8(self.take(n)?).ok()
    }

    #[inline]
    fn option_u32(&mut self) -> Option<Option<u32>> {
        match self.byte()? {
            0 => Some(None),
            1 => Some(Some(self.u32()?)),
            _ => None,
        }
    }
}

/// The event of a version-1 record, or `None`: decode it with serde.
pub fn decode(bytes: &[u8]) -> Option<Event> {
    let mut r = Reader { bytes, pos: 0 };
    let at = r.i64()?;
    let body = match r.u32()? {
        0 => EventBody::AccountOpened {
            account_id: r.str()?.into(),
        },
        1 => {
            let account_id = r.str()?.into();
            let pbx_id = r.str()?.into();
            let n = r.len()?;
            // Each line takes at least two bytes: a bound on what to reserve.
            let mut licenses = SmallVec::with_capacity(n.min(bytes.len() / 2));
            for _ in 0..n {
                licenses.push(LicenseLine {
                    license_type: r.str()?.into(),
                    quantity: r.u32()?,
                });
            }
            let firmware_major = r.u32()?;
            let hosting = match r.u32()? {
                0 => Hosting::Gateway,
                1 => Hosting::Ipva,
                _ => return None,
            };
            let price_version = r.option_u32()?;
            let n = r.len()?;
            let mut warnings = Vec::with_capacity(n.min(bytes.len()));
            for _ in 0..n {
                warnings.push(r.str()?.to_owned());
            }
            EventBody::ConfigChanged {
                account_id,
                pbx_id,
                licenses,
                firmware_major,
                hosting,
                price_version,
                warnings,
            }
        }
        2 => EventBody::ToppedUp {
            account_id: r.str()?.into(),
            activation_key: r.str()?.into(),
            amount: Nano(r.i128()?),
            price_version: r.option_u32()?,
        },
        4 => EventBody::AccountClosed {
            account_id: r.str()?.into(),
            forfeited: Nano(r.i128()?),
        },
        // 3: a price list (serde decodes it); anything else is damage.
        _ => return None,
    };
    (r.pos == bytes.len()).then_some(Event { at, body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{sim::generate_history, Ledger, Policy};
    use crate::store::workload::Workload;

    fn serde_decode(bytes: &[u8]) -> Option<Event> {
        let (ev, used) =
            bincode::serde::decode_from_slice::<Event, _>(bytes, bincode::config::standard())
                .ok()?;
        (used == bytes.len()).then_some(ev)
    }

    fn encode(ev: &Event) -> Vec<u8> {
        bincode::serde::encode_to_vec(ev, bincode::config::standard()).expect("encode")
    }

    fn histories() -> Vec<Event> {
        let mut ledger = Ledger::new(Policy::default());
        let mut events = Workload::history(5, 3_000, &mut ledger);
        events.extend(generate_history(9, 50, 3_000).log);
        // Every variant, with values at the edges of their encodings.
        for (at, amount) in [
            (0, 0),
            (-1, -1),
            (i64::MAX, i128::MAX),
            (i64::MIN, i128::MIN),
        ] {
            events.push(Event {
                at,
                body: EventBody::ToppedUp {
                    account_id: "é-ü".into(),
                    activation_key: "K".repeat(300).into(),
                    amount: Nano(amount),
                    price_version: Some(u32::MAX),
                },
            });
            events.push(Event {
                at,
                body: EventBody::AccountClosed {
                    account_id: "".into(),
                    forfeited: Nano(amount),
                },
            });
        }
        events.push(Event {
            at: 7,
            body: EventBody::ConfigChanged {
                account_id: "a".into(),
                pbx_id: "p".into(),
                licenses: (0..5)
                    .map(|i| LicenseLine {
                        license_type: format!("T{i}").into(),
                        quantity: 250 + i * 70_000,
                    })
                    .collect(),
                firmware_major: 65_536,
                hosting: Hosting::Ipva,
                price_version: None,
                warnings: vec!["w1".into(), "".into()],
            },
        });
        events
    }

    #[test]
    fn decodes_every_event_as_serde_does() {
        let mut fast = 0;
        for ev in histories() {
            let bytes = encode(&ev);
            match decode(&bytes) {
                Some(got) => {
                    assert_eq!(got, ev);
                    fast += 1;
                }
                None => assert!(
                    matches!(ev.body, EventBody::PriceListPublished(_)),
                    "only price lists go to serde: {ev:?}"
                ),
            }
        }
        assert!(fast > 5_000, "{fast}");
    }

    #[test]
    fn damaged_bytes_never_decode_to_something_serde_would_not() {
        // Every single-byte change (three patterns) and every truncation of
        // a sample of records: when the fast path answers, serde agrees.
        for ev in histories().iter().step_by(97) {
            let bytes = encode(ev);
            for i in 0..bytes.len() {
                for flip in [0x01u8, 0x80, 0xff] {
                    let mut damaged = bytes.clone();
                    damaged[i] ^= flip;
                    if let Some(got) = decode(&damaged) {
                        assert_eq!(Some(got), serde_decode(&damaged), "byte {i} ^ {flip:#x}");
                    }
                }
                let cut = &bytes[..i];
                if let Some(got) = decode(cut) {
                    assert_eq!(Some(got), serde_decode(cut), "cut at {i}");
                }
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(decode(&longer), None, "trailing bytes go to serde");
        }
    }

    #[test]
    fn other_integer_widths_are_left_to_serde_or_agree() {
        // bincode accepts a small value written in a wider form; whatever
        // the fast path does with it, it agrees with serde.
        let ev = Event {
            at: 3,
            body: EventBody::AccountOpened {
                account_id: "a".into(),
            },
        };
        let canonical = encode(&ev);
        let mut wide = vec![251, 6, 0]; // at = 3, zigzag 6, as a u16
        wide.extend_from_slice(&canonical[1..]);
        assert_eq!(serde_decode(&wide), Some(ev.clone()));
        assert_eq!(decode(&wide), Some(ev));
    }
}
