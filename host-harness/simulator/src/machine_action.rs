//! The MachineAction the simulator creates, shaped like the API's.

use serde_json::{Value, json};

/// A new `StopAndQuarantineFile` action, `Pending`, as the API returns it today, created at `now`
/// (as the API writes it).
pub fn stop_and_quarantine(
    machine_id: &str,
    sha1: &str,
    comment: &str,
    requestor: &str,
    now: &str,
) -> Value {
    let mut id = [0u8; 16];
    // Predictable action IDs would only make the simulator less realistic, not unsafe.
    let _ = getrandom::fill(&mut id);
    json!({
        "@odata.context": "https://api.security.microsoft.com/api/$metadata#MachineActions/$entity",
        "id": guid(&id),
        "type": "StopAndQuarantineFile",
        "title": null,
        "requestor": requestor,
        "requestorComment": comment,
        "status": "Pending",
        "machineId": machine_id,
        "computerDnsName": format!("desktop-{}.contoso.local", &machine_id[..8]),
        "creationDateTimeUtc": now,
        "lastUpdateDateTimeUtc": now,
        "cancellationRequestor": null,
        "cancellationComment": null,
        "cancellationDateTimeUtc": null,
        "errorHResult": 0,
        "scope": null,
        "externalId": null,
        "requestSource": "PublicApi",
        "relatedFileInfo": {"fileIdentifier": sha1, "fileIdentifierType": "Sha1"},
        "commands": [],
        "troubleshootInfo": null
    })
}

/// Formats 16 bytes as a version-4 GUID.
pub fn guid(bytes: &[u8; 16]) -> String {
    let mut b = *bytes;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}
