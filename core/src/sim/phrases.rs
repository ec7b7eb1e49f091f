//! What a carrier's feed says: the `raw_status` text and the signer of a delivery. Written into
//! reused buffers: no allocation per scan.

use super::carrier::{push_padded, push_staff_id, Carrier};
use super::geo::Geo;
use super::scan::Scan;
use crate::event::{Signer, SignerType, Status};

const SURNAMES: [&str; 10] = ["张", "王", "李", "赵", "刘", "陈", "杨", "黄", "周", "吴"];
const PROXIES: [&str; 5] = ["门卫", "前台", "家人", "物业", "同事"];
const DELIVERY_FAILED: [&str; 3] = [
    "派送不成功：电话无人接听，将于次日再次派送",
    "收件人要求改日派送",
    "地址不详，正在联系收件人",
];
const EXCEPTIONS: [&str; 4] = [
    "快件异常：外包装破损，已加固处理",
    "受天气影响，快件延误",
    "快件滞留，正在处理中",
    "安检查验，快件暂扣",
];
const RETURNS: [&str; 2] = [
    "快件已退回寄件人，退回原因：收件人拒收",
    "多次派送不成功，快件已退回寄件人",
];

fn pick<'a>(list: &[&'a str], v: u8) -> &'a str {
    list[v as usize % list.len()]
}

fn locker(carrier: Carrier, v: u8) -> &'static str {
    match (carrier, v % 2) {
        (Carrier::Jd, _) => "京东自提柜",
        (_, 0) => "丰巢智能柜",
        _ => "中邮速递易",
    }
}

fn station(carrier: Carrier, v: u8) -> &'static str {
    match (carrier, v % 3) {
        (Carrier::Jd, _) => "京东快递站",
        (_, 0) => "菜鸟驿站",
        (_, 1) => "妈妈驿站",
        _ => "兔喜生活",
    }
}

/// Append the carrier's own wording of `scan` (e.g. `快件已到达【广东转运中心】`).
pub(crate) fn push_raw_status(s: &mut String, scan: &Scan, carrier: Carrier, geo: &Geo) {
    let prov = geo.regions[scan.loc as usize].name_zh;
    let v = scan.variant;
    let bracket = |s: &mut String, name: &str, suffix: &str| {
        s.push('【');
        s.push_str(name);
        s.push_str(suffix);
        s.push('】');
    };
    match scan.status {
        Status::InfoReceived => {
            bracket(s, carrier.brand(), "");
            s.push_str(if v % 2 == 0 {
                "寄件人已下单，等待快递员上门揽收"
            } else {
                "电子面单已打印，等待揽收"
            });
        }
        Status::PickedUp => {
            bracket(s, prov, "");
            s.push_str(carrier.brand());
            s.push_str("快递员已揽收");
        }
        Status::InTransit if scan.next_loc != u8::MAX => {
            s.push_str("快件已从");
            bracket(s, prov, "转运中心");
            s.push_str("发出，下一站");
            bracket(s, geo.regions[scan.next_loc as usize].name_zh, "转运中心");
        }
        Status::InTransit => {
            s.push_str(if v % 2 == 0 {
                "快件已到达"
            } else {
                "快件到达"
            });
            bracket(
                s,
                prov,
                if v % 2 == 0 {
                    "转运中心"
                } else {
                    "分拨中心"
                },
            );
        }
        Status::OutForDelivery => {
            bracket(s, prov, "");
            s.push_str("快件正在派送中，派件员：");
            s.push_str(pick(&SURNAMES, v));
            s.push_str("师傅，请保持电话畅通");
        }
        Status::Delivered => match SignerType::from_u8(scan.signer) {
            Some(SignerType::Proxy) => {
                s.push_str("已签收，由");
                s.push_str(pick(&PROXIES, v));
                s.push_str("代收");
            }
            Some(SignerType::Locker) => {
                s.push_str("快件已投递至");
                bracket(s, locker(carrier, v), "");
                s.push_str("，已签收");
            }
            _ => {
                s.push_str("已签收，签收人：本人签收。感谢使用");
                s.push_str(carrier.brand());
            }
        },
        Status::DeliveryFailed => s.push_str(pick(&DELIVERY_FAILED, v)),
        Status::AvailableForPickup => {
            s.push_str("快件已存放至");
            let place = if scan.signer == SignerType::Locker as u8 {
                locker(carrier, v)
            } else {
                station(carrier, v)
            };
            bracket(s, place, "");
            s.push_str("，请凭取件码领取");
        }
        Status::Exception => s.push_str(pick(&EXCEPTIONS, v)),
        Status::ReturnedToSender => s.push_str(pick(&RETURNS, v)),
    }
}

/// Fill the reused `signer` for a DELIVERED scan (all fields cleared first). Other scans leave
/// it empty, which an [`crate::event::EventBatch`] stores exactly like "no signer".
pub(crate) fn fill_signer(signer: &mut Signer, scan: &Scan, carrier: Carrier) {
    signer.name.clear();
    signer.proxy_id.clear();
    signer.staff_id.clear();
    signer.kind = None;
    if scan.status != Status::Delivered {
        return;
    }
    let kind = SignerType::from_u8(scan.signer).unwrap_or(SignerType::SelfSigned);
    let v = scan.variant;
    signer.kind = Some(kind);
    match kind {
        SignerType::SelfSigned => {
            signer.name.push_str(pick(&SURNAMES, v >> 1));
            signer.name.push_str(if v % 2 == 0 { "*" } else { "**" });
        }
        SignerType::Proxy => {
            signer.name.push_str(pick(&PROXIES, v));
            signer.proxy_id.push_str("PX");
            push_padded(&mut signer.proxy_id, u64::from(scan.aux >> 4), 8);
        }
        SignerType::Locker => {
            signer.name.push_str(locker(carrier, v));
            signer
                .proxy_id
                .push_str(if carrier == Carrier::Jd { "JDZT" } else { "FC" });
            push_padded(&mut signer.proxy_id, u64::from(scan.aux), 10);
        }
    }
    push_staff_id(
        &mut signer.staff_id,
        carrier,
        u64::from(scan.aux.rotate_left(13)),
    );
}
