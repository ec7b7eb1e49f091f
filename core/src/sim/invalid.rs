//! Invalid raw inputs, as a real feed has them: a gateway that drops a field, a carrier adapter
//! that writes "yesterday" into `ts`, an unmapped status, a number sent as text, a line cut off.
//! Each is one NDJSON line (no trailing newline) that every decoder must reject.

use super::carrier::Carrier;
use super::rng::Rng;
use crate::event::Event;
use std::io::Write;

/// The defects, in the order [`line`] draws them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Defect {
    /// A scan without `shipment`.
    MissingShipment,
    /// `ts` is `"yesterday"`.
    BadTs,
    /// `status` is `"LOST_IN_SPACE"`.
    UnknownStatus,
    /// `shock_g` is the string `"3.4g"`.
    ShockAsString,
    /// A valid line cut off mid-way (not valid JSON).
    Truncated,
    /// `kind` is `"parcel"`.
    UnknownKind,
}

impl Defect {
    pub const ALL: [Defect; 6] = [
        Defect::MissingShipment,
        Defect::BadTs,
        Defect::UnknownStatus,
        Defect::ShockAsString,
        Defect::Truncated,
        Defect::UnknownKind,
    ];
}

/// An invalid line modelled on `e` (the event just emitted), so ids and times look real.
#[cold]
pub(crate) fn line(e: &Event, carrier: Carrier, rng: &mut Rng) -> Vec<u8> {
    let defect = Defect::ALL[rng.below(Defect::ALL.len() as u64) as usize];
    render(defect, e, carrier, rng)
}

pub(crate) fn render(defect: Defect, e: &Event, carrier: Carrier, rng: &mut Rng) -> Vec<u8> {
    let (ship, ts, carrier) = (&e.shipment, e.ts, carrier.code());
    let loc = if e.location.is_empty() {
        "CN-440000"
    } else {
        e.location.as_str()
    };
    let device = if e.device.is_empty() {
        "TAG-00000000FF"
    } else {
        e.device.as_str()
    };
    let mut out = Vec::with_capacity(160);
    // Writing into a Vec cannot fail.
    let _ = match defect {
        Defect::MissingShipment => write!(
            out,
            r#"{{"kind":"scan","carrier":"{carrier}","ts":{ts},"status":"IN_TRANSIT","location":"{loc}"}}"#
        ),
        Defect::BadTs => write!(
            out,
            r#"{{"kind":"scan","shipment":"{ship}","carrier":"{carrier}","ts":"yesterday","status":"IN_TRANSIT","location":"{loc}"}}"#
        ),
        Defect::UnknownStatus => write!(
            out,
            r#"{{"kind":"scan","shipment":"{ship}","carrier":"{carrier}","ts":{ts},"status":"LOST_IN_SPACE","location":"{loc}","raw_status":"快件丢失"}}"#
        ),
        Defect::ShockAsString => write!(
            out,
            r#"{{"kind":"sensor","shipment":"{ship}","device":"{device}","ts":{ts},"shock_g":"3.4g","temp_c":24.5}}"#
        ),
        Defect::Truncated => {
            let full = format!(
                r#"{{"kind":"sensor","shipment":"{ship}","device":"{device}","ts":{ts},"shock_g":0.42,"temp_c":23.1,"humidity_pct":55.0,"battery_pct":80.5}}"#
            );
            // Cut inside the object, never on a multi-byte boundary (the line is ASCII).
            let cut = 12 + rng.below((full.len() - 24) as u64) as usize;
            out.extend_from_slice(&full.as_bytes()[..cut]);
            Ok(())
        }
        Defect::UnknownKind => write!(
            out,
            r#"{{"kind":"parcel","shipment":"{ship}","ts":{ts},"weight_kg":1.2}}"#
        ),
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::rng::Stream;

    #[test]
    fn every_defect_is_one_line_and_only_truncated_is_bad_json() {
        let e = Event {
            shipment: "SF1234567890123".into(),
            ts: 1_788_710_400_000,
            carrier: "SF".into(),
            location: "CN-440000".into(),
            ..Event::default()
        };
        let mut rng = Rng::derive(1, Stream::Transport, 0);
        for d in Defect::ALL {
            for _ in 0..50 {
                let l = render(d, &e, Carrier::Sf, &mut rng);
                assert!(!l.contains(&b'\n'));
                let parsed = serde_json::from_slice::<serde_json::Value>(&l);
                assert_eq!(
                    parsed.is_err(),
                    d == Defect::Truncated,
                    "{d:?}: {}",
                    String::from_utf8_lossy(&l)
                );
            }
        }
    }
}
