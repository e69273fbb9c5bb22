//! Writes the controllers share: a status by server-side apply, and an Event's note cut to the
//! size the API server keeps.

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::warn;

use super::ControllerError;

/// The field manager of every status the operator writes.
pub const FIELD_MANAGER: &str = "tooljet-operator";

/// The status of `obj` as a server-side apply patch: apiVersion, kind and status only.
pub fn status_patch<K: Resource<DynamicType = ()>>(status: &impl Serialize) -> serde_json::Value {
    json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    })
}

/// Applies `status` to `obj`'s status subresource (forced: the operator owns its status).
pub async fn apply_status<K>(
    api: &Api<K>,
    obj: &K,
    status: &impl Serialize,
) -> Result<(), ControllerError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(status_patch::<K>(status)),
    )
    .await
    .map(|_| ())
    .map_err(ControllerError::Kube)
}

/// Publishes an Event about `obj` (its note cut by [`event_note`]). An Event is informative, the
/// status says the same: a failure is logged, not returned.
pub async fn publish_event<K: Resource<DynamicType = ()>>(
    recorder: &Recorder,
    obj: &K,
    type_: EventType,
    reason: &str,
    note: &str,
    action: &str,
) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(event_note(note)),
        action: action.into(),
        secondary: None,
    };
    if let Err(error) = recorder.publish(&event, &obj.object_ref(&())).await {
        warn!(kind = %K::kind(&()), name = %obj.name_any(), %error, "could not publish an Event");
    }
}

/// An Event's note: at most 1,000 bytes, cut on a character boundary.
pub fn event_note(note: &str) -> String {
    let mut end = note.len().min(1000);
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    note[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_notes_stay_under_one_kilobyte_on_a_char_boundary() {
        let note = event_note(&"é".repeat(800));
        assert!(note.len() <= 1000 && note.len() >= 998);
        assert_eq!(event_note("short"), "short");
    }
}
