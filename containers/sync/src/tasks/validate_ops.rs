//! ValidateOps: turn a batch's raw ops into changes, or say exactly which ops are wrong and why.
//! Nothing is applied until every op of the batch passes.

use serde::Serialize;
use serde_json::{Map, Value};
use ship::config::check_region_id;
use ship::contracts::{Change, Checked, Hlc, HybridClock, OpKind, Payload, SyncResource, Version};
use ship::parents::Task;

/// What is wrong with one op of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpError {
    /// Position of the op in the batch.
    pub index: usize,
    /// The op's id when it had a readable one.
    pub op_id: Option<String>,
    /// The field at fault (`payload.email` for a payload field), when there is one.
    pub field: Option<String>,
    pub code: String,
    pub message: String,
}

/// Which origins a batch may carry. A push speaks only for its sender; a pull relays every
/// region's changes but never this region's own (the feed was asked to leave them out, and a
/// region's own writes are only ever made here).
#[derive(Debug, Clone, Copy)]
pub enum Origins<'a> {
    /// `POST /sync/{resource}/ops`: every op's origin is the batch's `source_region`.
    SenderOnly(&'a str),
    /// A pulled page: no op's origin is this region.
    NotOurs(&'a str),
    /// A peer's snapshot: its rows, whoever wrote them — this region's own included (a
    /// restored region gets back its own writes its copy lacks; LWW keeps a newer local one).
    Any,
}

impl Origins<'_> {
    /// The refusal for `origin`, if it is not one this batch may carry.
    fn check(self, origin: &str) -> Option<(&'static str, String)> {
        match self {
            Origins::SenderOnly(sender) if origin != sender => Some((
                "origin_not_sender",
                format!(
                    "a push carries only its sender's own changes: origin `{}` is not the \
                     batch's source_region `{}` (other regions' changes travel by pull)",
                    ship::errors::clip(origin),
                    ship::errors::clip(sender)
                ),
            )),
            Origins::NotOurs(ours) if origin == ours => Some((
                "own_origin",
                format!(
                    "a change of this region's own origin `{ours}`: a peer never relays a \
                     region's own writes back to it"
                ),
            )),
            _ => None,
        }
    }
}

/// An op that passed validation.
#[derive(Debug, Clone)]
pub struct ValidOp {
    pub op_id: String,
    pub change: Change,
}

pub(crate) struct ValidateOpsTask;

impl Task for ValidateOpsTask {
    const NAME: &'static str = "sync.validate_ops";
}

const FIELDS: [&str; 6] = ["op_id", "entity_id", "kind", "hlc", "origin", "payload"];
const MAX_ID_LEN: usize = 64;
/// Unknown fields of one op named one by one.
const MAX_UNKNOWN_NAMED: usize = 5;

impl ValidateOpsTask {
    /// Every op valid → the changes in batch order; otherwise every error of every op.
    /// A timestamp beyond the clock's drift bound is an error (`clock_drift`); the clock is
    /// only read, never moved, here.
    pub(crate) fn run(
        resource: &dyn SyncResource,
        clock: &HybridClock,
        origins: Origins<'_>,
        ops: &[Value],
    ) -> Result<Vec<ValidOp>, Vec<OpError>> {
        let checked = Self::check(resource, clock, origins, ops)?;
        Ok(checked
            .into_iter()
            .zip(ops)
            .map(|((mut op, typed), raw)| {
                op.change.payload = Payload::from(raw.get("payload").cloned().unwrap_or_default())
                    .with_checked(typed);
                op
            })
            .collect())
    }

    /// [`Self::run`] taking the ops: each payload moves into its change, uncopied (a batch of
    /// a thousand ops is a thousand JSON trees).
    pub(crate) fn run_owned(
        resource: &dyn SyncResource,
        clock: &HybridClock,
        origins: Origins<'_>,
        ops: Vec<Value>,
    ) -> Result<Vec<ValidOp>, Vec<OpError>> {
        let checked = Self::check(resource, clock, origins, &ops)?;
        Ok(Self::owned(checked, ops))
    }

    /// The changes [`Self::check`] made of `ops`, each payload moved into its change.
    pub(crate) fn owned(checked: Vec<(ValidOp, Option<Checked>)>, ops: Vec<Value>) -> Vec<ValidOp> {
        checked
            .into_iter()
            .zip(ops)
            .map(|((mut op, typed), raw)| {
                if let Value::Object(mut fields) = raw {
                    op.change.payload = Payload::from(fields.remove("payload").unwrap_or_default())
                        .with_checked(typed);
                }
                op
            })
            .collect()
    }

    /// Every op valid → the changes in batch order, each payload still `null` (the callers
    /// above fill it in), each with the typed form the resource's validation made of its
    /// payload (ADR 0023); otherwise every error of every op, in batch order.
    ///
    /// A batch of [`SPLIT_FROM`] ops or more is checked in two halves, the second on another
    /// thread (ADR 0024): checking is the resource's decoding of every payload, the largest
    /// part of an apply's own work that comes before its first statement.
    pub(crate) fn check(
        resource: &dyn SyncResource,
        clock: &HybridClock,
        origins: Origins<'_>,
        ops: &[Value],
    ) -> Result<Vec<(ValidOp, Option<Checked>)>, Vec<OpError>> {
        let check = |ops: &[Value], offset: usize| {
            let mut valid = Vec::with_capacity(ops.len());
            let mut errors = Vec::new();
            for (index, raw) in (offset..).zip(ops) {
                match validate_op(resource, clock, origins, index, raw) {
                    Ok(op) => valid.push(op),
                    Err(mut op_errors) => errors.append(&mut op_errors),
                }
            }
            (valid, errors)
        };
        let (valid, errors) = if ops.len() >= SPLIT_FROM {
            let (first, second) = ops.split_at(ops.len() / 2);
            let ((mut valid, mut errors), (valid_2, errors_2)) =
                ship::parallel::join(|| check(first, 0), || check(second, first.len()));
            valid.extend(valid_2);
            errors.extend(errors_2);
            (valid, errors)
        } else {
            check(ops, 0)
        };
        if errors.is_empty() {
            Ok(valid)
        } else {
            Err(errors)
        }
    }
}

/// Ops from which a batch is checked on two threads ([`ValidateOpsTask::check`]): below it,
/// starting a thread costs more than it saves.
pub(crate) const SPLIT_FROM: usize = 128;

fn validate_op(
    resource: &dyn SyncResource,
    clock: &HybridClock,
    origins: Origins<'_>,
    index: usize,
    raw: &Value,
) -> Result<(ValidOp, Option<Checked>), Vec<OpError>> {
    let Some(op) = raw.as_object() else {
        return Err(vec![error(
            index,
            None,
            None,
            "invalid_type",
            "an op must be a JSON object",
        )]);
    };
    let op_id = id_field(op, "op_id").ok();
    let mut errors = Vec::new();
    let mut fail = |field: Option<&str>, code: &str, message: String| {
        errors.push(error(
            index,
            op_id.clone(),
            field.map(str::to_string),
            code,
            &message,
        ));
    };
    // The first few by name: an op of 100 000 unknown keys is not answered key by key.
    for key in op
        .keys()
        .filter(|k| !FIELDS.contains(&k.as_str()))
        .take(MAX_UNKNOWN_NAMED)
    {
        let key = ship::errors::clip(key);
        fail(
            Some(&key),
            "unknown_field",
            format!("`{key}` is not a field of an op"),
        );
    }
    let checked_op_id = id_field(op, "op_id")
        .map_err(|(code, m)| fail(Some("op_id"), code, m))
        .ok();
    let entity_id = id_field(op, "entity_id")
        .map_err(|(code, m)| fail(Some("entity_id"), code, m))
        .ok();
    let kind = match op.get("kind") {
        None => {
            fail(Some("kind"), "required", "`kind` is required".into());
            None
        }
        Some(v) => match v.as_str().and_then(OpKind::parse) {
            Some(kind) => Some(kind),
            None => {
                fail(
                    Some("kind"),
                    "invalid_value",
                    "`kind` must be \"upsert\" or \"delete\"".into(),
                );
                None
            }
        },
    };
    let hlc = match op.get("hlc") {
        None => {
            fail(Some("hlc"), "required", "`hlc` is required".into());
            None
        }
        Some(v) => match v.as_i64().map(Hlc::from_i64) {
            Some(Ok(hlc)) => match clock.check_drift(hlc) {
                Ok(()) => Some(hlc),
                Err(e) => {
                    fail(Some("hlc"), "clock_drift", e.to_string());
                    None
                }
            },
            _ => {
                fail(
                    Some("hlc"),
                    "invalid_value",
                    "`hlc` must be a non-negative 64-bit integer".into(),
                );
                None
            }
        },
    };
    let origin = match op.get("origin").and_then(Value::as_str) {
        None => {
            fail(
                Some("origin"),
                "required",
                "`origin` must be a region id string".into(),
            );
            None
        }
        Some(o) => match check_region_id(o) {
            Ok(()) => match origins.check(o) {
                None => Some(o.to_string()),
                Some((code, message)) => {
                    fail(Some("origin"), code, message);
                    None
                }
            },
            Err(m) => {
                fail(Some("origin"), "invalid_value", m);
                None
            }
        },
    };
    let payload = op.get("payload");
    if payload.is_none() {
        fail(Some("payload"), "required", "`payload` is required".into());
    }
    let mut typed = None;
    if let (Some(entity_id), Some(kind), Some(payload)) = (&entity_id, kind, payload) {
        match resource.validate_checked(entity_id, kind, payload) {
            Ok(checked) => typed = checked,
            Err(field_errors) => {
                for e in field_errors {
                    fail(Some(&format!("payload.{}", e.field)), &e.code, e.message);
                }
            }
        }
    }
    match (checked_op_id, entity_id, kind, hlc, origin, payload) {
        (Some(op_id), Some(entity_id), Some(kind), Some(hlc), Some(origin), Some(_))
            if errors.is_empty() =>
        {
            Ok((
                ValidOp {
                    op_id,
                    change: Change {
                        resource: resource.name().to_string(),
                        entity_id,
                        kind,
                        version: Version::new(hlc, origin),
                        // Filled in by `run` or `run_owned`, which own or copy it.
                        payload: Value::Null.into(),
                    },
                },
                typed,
            ))
        }
        _ => Err(errors),
    }
}

/// A required string identifier of 1 to 64 characters.
fn id_field(op: &Map<String, Value>, name: &str) -> Result<String, (&'static str, String)> {
    match op.get(name) {
        None => Err(("required", format!("`{name}` is required"))),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_ID_LEN => Ok(s.clone()),
        Some(Value::String(_)) => Err((
            "invalid_value",
            format!("`{name}` must be 1 to {MAX_ID_LEN} bytes"),
        )),
        Some(_) => Err(("invalid_type", format!("`{name}` must be a string"))),
    }
}

fn error(
    index: usize,
    op_id: Option<String>,
    field: Option<String>,
    code: &str,
    message: &str,
) -> OpError {
    OpError {
        index,
        op_id,
        field,
        code: code.to_string(),
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;
    use serde_json::json;
    use ship::contracts::{ApplyOutcome, FieldError};
    use ship::{AnyConnection, DbError};

    use super::*;

    /// Accepts any object payload: the task's own checks are under test.
    struct Anything;

    impl SyncResource for Anything {
        fn name(&self) -> &'static str {
            "anything"
        }
        fn validate(&self, _: &str, _: OpKind, payload: &Value) -> Result<(), Vec<FieldError>> {
            if payload.is_object() {
                Ok(())
            } else {
                Err(vec![FieldError::new(
                    "payload",
                    "invalid_type",
                    "an object",
                )])
            }
        }
        /// Its typed form: the entity id it was checked against.
        fn validate_checked(
            &self,
            entity_id: &str,
            kind: OpKind,
            payload: &Value,
        ) -> Result<Option<Checked>, Vec<FieldError>> {
            self.validate(entity_id, kind, payload)?;
            Ok(Some(std::sync::Arc::new(format!("checked {entity_id}"))))
        }
        fn apply(
            &self,
            _: &mut AnyConnection,
            _: &Change,
            _: ship::contracts::ConflictPolicy,
        ) -> Result<ApplyOutcome, DbError> {
            Ok(ApplyOutcome::Duplicate)
        }
        fn snapshot_page(
            &self,
            _: &mut AnyConnection,
            _: Option<&str>,
            _: i64,
        ) -> Result<Vec<Change>, DbError> {
            Ok(vec![])
        }
        fn entity(&self, _: &mut AnyConnection, _: &str) -> Result<Option<Change>, DbError> {
            Ok(None)
        }
        fn digest(&self, _: &mut AnyConnection) -> Result<String, DbError> {
            Ok(String::new())
        }
        fn row_info(
            &self,
            _: &mut AnyConnection,
            _: &[&str],
            _: bool,
        ) -> Result<std::collections::HashMap<String, ship::contracts::RowInfo>, DbError> {
            Ok(Default::default())
        }
    }

    const PUSH: Origins<'static> = Origins::SenderOnly("eu-west");

    fn clock() -> HybridClock {
        HybridClock::new(Duration::from_secs(5))
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            "\\PC{0,20}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("op_id".to_string()),
                        Just("entity_id".to_string()),
                        Just("kind".to_string()),
                        Just("hlc".to_string()),
                        Just("origin".to_string()),
                        Just("payload".to_string()),
                        "[a-z]{1,8}",
                    ],
                    inner,
                    0..8,
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Fuzz-style: any JSON as an op is either a valid op or errors that name its index —
        /// never a panic, never an error without a code.
        #[test]
        fn any_json_op_is_validated_or_refused_by_index(ops in prop::collection::vec(any_json(), 1..5)) {
            match ValidateOpsTask::run(&Anything, &clock(), Origins::NotOurs("here"), &ops) {
                Ok(valid) => prop_assert_eq!(valid.len(), ops.len()),
                Err(errors) => {
                    prop_assert!(!errors.is_empty());
                    for e in errors {
                        prop_assert!(e.index < ops.len());
                        prop_assert!(!e.code.is_empty());
                    }
                }
            }
        }
    }

    /// ADR 0024: a batch of `SPLIT_FROM` ops or more is checked in two halves on two threads,
    /// and says the same as one checked op by op — the changes in batch order, each with its
    /// own payload and typed form; or every error, in batch order, each at its op's index (the
    /// second half's too).
    #[test]
    fn a_large_batch_checked_in_halves_is_answered_in_batch_order() {
        let now = ship::contracts::hlc::system_time_ms() as i64;
        let n = 3 * SPLIT_FROM + 1;
        let op = |k: usize| json!({"op_id": format!("op{k}"), "entity_id": format!("e{k}"), "kind": "upsert", "hlc": now << 16, "origin": "eu-west", "payload": {"k": k}});
        let ops: Vec<Value> = (0..n).map(op).collect();
        for valid in [
            ValidateOpsTask::run(&Anything, &clock(), PUSH, &ops).unwrap(),
            ValidateOpsTask::run_owned(&Anything, &clock(), PUSH, ops.clone()).unwrap(),
        ] {
            assert_eq!(valid.len(), n);
            for (k, op) in valid.iter().enumerate() {
                assert_eq!(op.op_id, format!("op{k}"));
                assert_eq!(op.change.entity_id, format!("e{k}"));
                assert_eq!(op.change.payload.value(), &json!({"k": k}));
                assert_eq!(
                    op.change.payload.checked::<String>(),
                    Some(&format!("checked e{k}"))
                );
            }
        }
        let wrong = [3, n / 2 + 1, n - 1];
        let mut ops = ops;
        for k in wrong {
            ops[k]["payload"] = json!(k);
        }
        let errors = ValidateOpsTask::run_owned(&Anything, &clock(), PUSH, ops).unwrap_err();
        let found: Vec<(usize, Option<String>)> =
            errors.into_iter().map(|e| (e.index, e.op_id)).collect();
        let expected: Vec<(usize, Option<String>)> =
            wrong.iter().map(|&k| (k, Some(format!("op{k}")))).collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn each_change_keeps_the_typed_form_its_validation_made_with_its_payload() {
        let now = ship::contracts::hlc::system_time_ms() as i64;
        let ops: Vec<Value> = ["a", "b"]
            .iter()
            .map(|id| json!({"op_id": id, "entity_id": id, "kind": "upsert", "hlc": now << 16, "origin": "eu-west", "payload": {"id": id}}))
            .collect();
        let borrowed = ValidateOpsTask::run(&Anything, &clock(), PUSH, &ops).unwrap();
        let owned = ValidateOpsTask::run_owned(&Anything, &clock(), PUSH, ops.clone()).unwrap();
        for valid in [borrowed, owned] {
            let kept: Vec<(Option<&String>, &Value)> = valid
                .iter()
                .map(|op| {
                    (
                        op.change.payload.checked::<String>(),
                        op.change.payload.value(),
                    )
                })
                .collect();
            assert_eq!(
                kept,
                [
                    (Some(&"checked a".to_string()), &json!({"id": "a"})),
                    (Some(&"checked b".to_string()), &json!({"id": "b"}))
                ]
            );
        }
    }

    #[test]
    fn a_valid_op_becomes_a_change_and_every_error_is_named() {
        let now = ship::contracts::hlc::system_time_ms() as i64;
        let good = json!({"op_id": "1", "entity_id": "e", "kind": "delete", "hlc": now << 16, "origin": "eu-west", "payload": {}});
        let valid =
            ValidateOpsTask::run(&Anything, &clock(), PUSH, std::slice::from_ref(&good)).unwrap();
        assert_eq!(valid[0].change.kind, OpKind::Delete);
        assert_eq!(valid[0].change.version.origin, "eu-west");

        let bad = json!({"op_id": "", "kind": "merge", "hlc": (now + 60_000) << 16, "origin": "EU", "payload": 5, "x": 1});
        let errors = ValidateOpsTask::run(&Anything, &clock(), PUSH, &[good, bad]).unwrap_err();
        let got: Vec<(Option<&str>, &str)> = errors
            .iter()
            .map(|e| (e.field.as_deref(), e.code.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (Some("x"), "unknown_field"),
                (Some("op_id"), "invalid_value"),
                (Some("entity_id"), "required"),
                (Some("kind"), "invalid_value"),
                (Some("hlc"), "clock_drift"),
                (Some("origin"), "invalid_value"),
            ]
        );
        assert!(errors.iter().all(|e| e.index == 1));
    }

    /// Issue 12: a push that speaks for another region (or for the receiver) is refused by op;
    /// a pulled page relays any region's changes but never the puller's own.
    #[test]
    fn a_push_carries_only_its_senders_origin_and_a_pull_never_our_own() {
        let now = ship::contracts::hlc::system_time_ms() as i64;
        let op = |origin: &str| json!({"op_id": "1", "entity_id": "e", "kind": "delete", "hlc": now << 16, "origin": origin, "payload": {}});
        let push = Origins::SenderOnly("x");
        let codes = |ops: &[Value], origins| match ValidateOpsTask::run(
            &Anything,
            &clock(),
            origins,
            ops,
        ) {
            Ok(_) => vec![],
            Err(errors) => errors
                .into_iter()
                .map(|e| (e.index, e.field.unwrap_or_default(), e.code))
                .collect::<Vec<_>>(),
        };
        assert_eq!(codes(&[op("x")], push), vec![]);
        assert_eq!(
            codes(&[op("x"), op("us-east"), op("eu-west")], push),
            vec![
                (1, "origin".to_string(), "origin_not_sender".to_string()),
                (2, "origin".to_string(), "origin_not_sender".to_string()),
            ]
        );
        let pull = Origins::NotOurs("eu-west");
        assert_eq!(codes(&[op("x"), op("us-east")], pull), vec![]);
        assert_eq!(
            codes(&[op("x"), op("eu-west")], pull),
            vec![(1, "origin".to_string(), "own_origin".to_string())]
        );
    }

    /// Issue 12: an unknown field named by a 1 MiB key is echoed as a short prefix only.
    #[test]
    fn a_huge_unknown_field_is_echoed_as_a_prefix() {
        let now = ship::contracts::hlc::system_time_ms() as i64;
        let key = "k".repeat(1 << 20);
        let mut op = json!({"op_id": "1", "entity_id": "e", "kind": "delete", "hlc": now << 16, "origin": "eu-west", "payload": {}});
        op[&key] = json!(1);
        let errors = ValidateOpsTask::run(&Anything, &clock(), PUSH, &[op]).unwrap_err();
        let size = serde_json::to_string(&errors).unwrap().len();
        assert!(size < 1024, "{size} bytes of errors");
        assert_eq!(errors[0].code, "unknown_field");

        // 100 000 unknown keys are named by the first few, not one error each.
        let mut op = json!({"op_id": "1", "entity_id": "e", "kind": "delete", "hlc": now << 16, "origin": "eu-west", "payload": {}});
        for i in 0..100_000 {
            op[format!("x{i}")] = json!(1);
        }
        let errors = ValidateOpsTask::run(&Anything, &clock(), PUSH, &[op]).unwrap_err();
        assert_eq!(errors.len(), MAX_UNKNOWN_NAMED);
    }
}
