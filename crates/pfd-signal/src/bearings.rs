//! Rolling-element bearings: a table of common deep-groove ball bearings and the defect
//! frequencies of any bearing.
//!
//! With shaft frequency `f` (rpm / 60), `n` rolling elements of diameter `d` on pitch diameter
//! `D`, contact angle `α`, and `r = (d / D)·cos α` (outer race fixed, inner race turning):
//!
//! | line | meaning | frequency |
//! |---|---|---|
//! | FTF  | cage (fundamental train) | `f/2 · (1 − r)` |
//! | BPFO | ball pass, outer race    | `n·f/2 · (1 − r)` |
//! | BPFI | ball pass, inner race    | `n·f/2 · (1 + r)` |
//! | BSF  | ball spin                | `D/(2d) · f · (1 − r²)` |
//!
//! Real bearings slip 1–2 %, so measured lines sit slightly below these; the evidence searches
//! ±1 % around each (see [`crate::evidence`]).
//!
//! The table holds nominal geometries: 6203 and 6205 as published with the Case Western Reserve
//! University bearing data (SKF 6203-2RS, 6205-2RS JEM); the others with the ball count and ball
//! diameter of the common catalogue design and the pitch diameter taken as (bore + outside
//! diameter) / 2. For an exact bearing, pass its geometry (`balls`, `ball_diameter_mm`,
//! `pitch_diameter_mm`, `contact_angle_deg`), which overrides the table field by field.

use crate::{invalid, SignalError};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geometry {
    pub balls: u32,
    pub ball_diameter_mm: f64,
    pub pitch_diameter_mm: f64,
    pub contact_angle_deg: f64,
}

/// Name → nominal geometry.
pub const TABLE: &[(&str, Geometry)] = &[
    ("6203", deep_groove(8, 6.7462, 28.4988)),
    ("6204", deep_groove(8, 7.938, 33.5)),
    ("6205", deep_groove(9, 7.9402, 39.0398)),
    ("6206", deep_groove(9, 9.525, 46.0)),
    ("6207", deep_groove(9, 11.112, 53.5)),
    ("6208", deep_groove(9, 12.7, 60.0)),
];

const fn deep_groove(balls: u32, ball_diameter_mm: f64, pitch_diameter_mm: f64) -> Geometry {
    Geometry {
        balls,
        ball_diameter_mm,
        pitch_diameter_mm,
        contact_angle_deg: 0.0,
    }
}

/// The query's description of a bearing: a table name and/or explicit fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BearingQuery {
    pub name: Option<String>,
    pub balls: Option<u32>,
    pub ball_diameter_mm: Option<f64>,
    pub pitch_diameter_mm: Option<f64>,
    pub contact_angle_deg: Option<f64>,
}

impl BearingQuery {
    fn is_empty(&self) -> bool {
        *self == BearingQuery::default()
    }
}

/// The names of [`TABLE`], for messages and the API's documentation.
pub fn known_names() -> Vec<&'static str> {
    TABLE.iter().map(|(n, _)| *n).collect()
}

/// The bearing `query` describes (`None` when it names none), checked.
pub fn resolve(query: &BearingQuery) -> Result<Option<(String, Geometry)>, SignalError> {
    if query.is_empty() {
        return Ok(None);
    }
    let (label, base) = match &query.name {
        Some(name) => {
            let key = name.trim().to_ascii_uppercase();
            // "6205-2RS", "SKF 6205" → "6205": seals and brand do not change the geometry.
            let core = key
                .trim_start_matches("SKF")
                .trim()
                .split(['-', ' '])
                .next()
                .unwrap_or("");
            let found = TABLE.iter().find(|(n, _)| *n == core).ok_or_else(|| {
                invalid(format!(
                    "bearing {name:?} is not in the table; known bearings: {} (or give balls, ball_diameter_mm and pitch_diameter_mm)",
                    known_names().join(", ")
                ))
            })?;
            (found.0.to_string(), Some(found.1))
        }
        None => ("custom".to_string(), None),
    };
    let need = |v: Option<f64>, from: Option<f64>, what: &str| {
        v.or(from).ok_or_else(|| {
            invalid(format!(
                "{what} is required to describe a bearing that is not named (bearing=)"
            ))
        })
    };
    let geometry = Geometry {
        balls: query.balls.or(base.map(|b| b.balls)).ok_or_else(|| {
            invalid("balls is required to describe a bearing that is not named (bearing=)")
        })?,
        ball_diameter_mm: need(
            query.ball_diameter_mm,
            base.map(|b| b.ball_diameter_mm),
            "ball_diameter_mm",
        )?,
        pitch_diameter_mm: need(
            query.pitch_diameter_mm,
            base.map(|b| b.pitch_diameter_mm),
            "pitch_diameter_mm",
        )?,
        contact_angle_deg: query
            .contact_angle_deg
            .or(base.map(|b| b.contact_angle_deg))
            .unwrap_or(0.0),
    };
    check(&geometry)?;
    Ok(Some((label, geometry)))
}

fn check(g: &Geometry) -> Result<(), SignalError> {
    if g.balls < 3 {
        return Err(invalid(format!(
            "balls must be at least 3, got {}",
            g.balls
        )));
    }
    if !(g.ball_diameter_mm > 0.0 && g.ball_diameter_mm.is_finite()) {
        return Err(invalid(format!(
            "ball_diameter_mm must be positive, got {}",
            g.ball_diameter_mm
        )));
    }
    if !(g.pitch_diameter_mm > g.ball_diameter_mm && g.pitch_diameter_mm.is_finite()) {
        return Err(invalid(format!(
            "pitch_diameter_mm must be larger than ball_diameter_mm ({}), got {}",
            g.ball_diameter_mm, g.pitch_diameter_mm
        )));
    }
    if !(0.0..90.0).contains(&g.contact_angle_deg) {
        return Err(invalid(format!(
            "contact_angle_deg must be in [0, 90), got {}",
            g.contact_angle_deg
        )));
    }
    Ok(())
}

/// Defect frequencies as multiples of the shaft frequency ("orders").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DefectOrders {
    pub bpfo: f64,
    pub bpfi: f64,
    pub bsf: f64,
    pub ftf: f64,
}

pub fn defect_orders(g: &Geometry) -> DefectOrders {
    let r = g.ball_diameter_mm / g.pitch_diameter_mm * g.contact_angle_deg.to_radians().cos();
    let n = g.balls as f64;
    DefectOrders {
        bpfo: n / 2.0 * (1.0 - r),
        bpfi: n / 2.0 * (1.0 + r),
        bsf: g.pitch_diameter_mm / (2.0 * g.ball_diameter_mm) * (1.0 - r * r),
        ftf: 0.5 * (1.0 - r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cwru_6205_orders() {
        // CWRU's published drive-end figures: BPFI 5.4152, BPFO 3.5848, FTF 0.39828, and BSF
        // 4.7135, which is twice the spin frequency (a ball defect strikes both races per turn):
        // the BSF here is the spin frequency itself; the evidence reports its 2x harmonic too.
        let (_, g) = resolve(&BearingQuery {
            name: Some("6205-2RS".into()),
            ..Default::default()
        })
        .unwrap()
        .unwrap();
        let o = defect_orders(&g);
        assert!((o.bpfi - 5.4152).abs() < 1e-3, "{o:?}");
        assert!((o.bpfo - 3.5848).abs() < 1e-3, "{o:?}");
        assert!((o.ftf - 0.39828).abs() < 1e-4, "{o:?}");
        assert!((o.bsf - 2.357).abs() < 1e-2, "{o:?}");
    }

    #[test]
    fn unknown_names_list_the_table_and_fields_override() {
        let e = resolve(&BearingQuery {
            name: Some("9999".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("6203, 6204, 6205"), "{e}");
        let (label, g) = resolve(&BearingQuery {
            name: Some("6205".into()),
            balls: Some(10),
            ..Default::default()
        })
        .unwrap()
        .unwrap();
        assert_eq!((label.as_str(), g.balls), ("6205", 10));
        let e = resolve(&BearingQuery {
            balls: Some(8),
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            e.to_string().contains("ball_diameter_mm is required"),
            "{e}"
        );
        assert_eq!(resolve(&BearingQuery::default()).unwrap(), None);
    }
}
