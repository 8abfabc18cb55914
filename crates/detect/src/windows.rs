//! Windows event logs in the JSON shape `evtx_dump` writes (`{"Event": {"System": …,
//! "EventData": …}}`): flattened to the field names Sigma rules use, and their log source
//! (product, service, categories) derived from the channel and event id the way the Sigma Windows
//! and Sysmon pipelines route them.

use serde_json::{Map, Value};

use crate::EventSource;

/// The Sysmon channel.
pub const SYSMON_CHANNEL: &str = "Microsoft-Windows-Sysmon/Operational";

/// Windows channels and the Sigma `service` that names them (product `windows`).
const CHANNEL_SERVICES: &[(&str, &str)] = &[
    ("Security", "security"),
    ("System", "system"),
    ("Application", "application"),
    (SYSMON_CHANNEL, "sysmon"),
    ("Microsoft-Windows-PowerShell/Operational", "powershell"),
    ("PowerShellCore/Operational", "powershell"),
    ("Windows PowerShell", "powershell-classic"),
    (
        "Microsoft-Windows-Windows Defender/Operational",
        "windefend",
    ),
    (
        "Microsoft-Windows-CodeIntegrity/Operational",
        "codeintegrity-operational",
    ),
    (
        "Microsoft-Windows-AppXDeploymentServer/Operational",
        "appxdeployment-server",
    ),
    (
        "Microsoft-Windows-Windows Firewall With Advanced Security/Firewall",
        "firewall-as",
    ),
    ("MSExchange Management", "msexchange-management"),
    ("Microsoft-Windows-Bits-Client/Operational", "bits-client"),
    ("Microsoft-Windows-DNS-Client/Operational", "dns-client"),
    (
        "Microsoft-IIS-Configuration/Operational",
        "iis-configuration",
    ),
    (
        "Microsoft-Windows-TaskScheduler/Operational",
        "taskscheduler",
    ),
    ("Microsoft-Windows-NTLM/Operational", "ntlm"),
    ("Microsoft-Windows-WMI-Activity/Operational", "wmi"),
    (
        "Microsoft-Windows-Security-Mitigations/KernelMode",
        "security-mitigations",
    ),
    (
        "Microsoft-Windows-Security-Mitigations/UserMode",
        "security-mitigations",
    ),
    ("DNS Server", "dns-server"),
    ("Microsoft-Windows-AppLocker/EXE and DLL", "applocker"),
    ("Microsoft-Windows-AppLocker/MSI and Script", "applocker"),
    (
        "Microsoft-Windows-AppLocker/Packaged app-Deployment",
        "applocker",
    ),
    (
        "Microsoft-Windows-AppLocker/Packaged app-Execution",
        "applocker",
    ),
    (
        "Microsoft-Windows-TerminalServices-LocalSessionManager/Operational",
        "terminalservices-localsessionmanager",
    ),
    (
        "Microsoft-Windows-SMBServer/Connectivity",
        "smbserver-connectivity",
    ),
    ("Microsoft-Windows-SmbClient/Security", "smbclient-security"),
    ("Microsoft-Windows-Shell-Core/Operational", "shell-core"),
    ("OpenSSH/Operational", "openssh"),
    ("Microsoft-ServiceBus-Client", "microsoft-servicebus-client"),
    ("Microsoft-Windows-LSA/Operational", "lsa-server"),
    ("Microsoft-Windows-LDAP-Client/Debug", "ldap"),
    (
        "Microsoft-Windows-DriverFrameworks-UserMode/Operational",
        "driver-framework",
    ),
    (
        "Microsoft-Windows-Diagnosis-Scripted/Operational",
        "diagnosis-scripted",
    ),
    (
        "Microsoft-Windows-CertificateServicesClient-Lifecycle-System/Operational",
        "certificateservicesclient-lifecycle-system",
    ),
    ("Microsoft-Windows-CAPI2/Operational", "capi2"),
    (
        "Microsoft-Windows-AppxPackaging/Operational",
        "appxpackaging-om",
    ),
    (
        "Microsoft-Windows-AppModel-Runtime/Admin",
        "appmodel-runtime",
    ),
    ("Microsoft-Windows-PrintService/Admin", "printservice-admin"),
    (
        "Microsoft-Windows-PrintService/Operational",
        "printservice-operational",
    ),
    (
        "Microsoft-Windows-Kernel-EventTracing/Admin",
        "kernel-event-tracing",
    ),
    ("Microsoft-Windows-Sysmon-Linux", "sysmon"),
];

/// Sysmon event ids and the Sigma categories that cover them.
fn sysmon_categories(event_id: i64) -> &'static [&'static str] {
    match event_id {
        1 => &["process_creation"],
        2 => &["file_change"],
        3 => &["network_connection"],
        4 | 16 => &["sysmon_status"],
        5 => &["process_termination"],
        6 => &["driver_load"],
        7 => &["image_load"],
        8 => &["create_remote_thread"],
        9 => &["raw_access_thread"],
        10 => &["process_access"],
        11 => &["file_event"],
        12 => &["registry_add", "registry_delete", "registry_event"],
        13 => &["registry_set", "registry_event"],
        14 => &["registry_rename", "registry_event"],
        15 => &["create_stream_hash"],
        17 | 18 => &["pipe_created"],
        19..=21 => &["wmi_event"],
        22 => &["dns_query"],
        23 | 26 => &["file_delete"],
        24 => &["clipboard_capture"],
        25 => &["process_tampering"],
        27 => &["file_block_executable"],
        28 => &["file_block_shredding"],
        29 => &["file_executable_detected"],
        255 => &["sysmon_error"],
        _ => &[],
    }
}

/// PowerShell event ids and their Sigma categories (per channel).
fn powershell_categories(channel: &str, event_id: i64) -> &'static [&'static str] {
    match (channel, event_id) {
        ("Microsoft-Windows-PowerShell/Operational" | "PowerShellCore/Operational", 4104) => {
            &["ps_script"]
        }
        ("Microsoft-Windows-PowerShell/Operational" | "PowerShellCore/Operational", 4103) => {
            &["ps_module"]
        }
        ("Windows PowerShell", 400) => &["ps_classic_start"],
        ("Windows PowerShell", 600) => &["ps_classic_provider_start"],
        ("Windows PowerShell", 800) => &["ps_classic_script"],
        _ => &[],
    }
}

/// Whether `event` has the `evtx_dump` shape (an `Event` object with a `System` object).
pub fn is_evtx(event: &Value) -> bool {
    event
        .get("Event")
        .and_then(|e| e.get("System"))
        .is_some_and(Value::is_object)
}

/// Flattens an `evtx_dump` event into Sigma field names, with its log source. Returns `None`
/// when `event` does not have that shape.
///
/// System fields: `EventID`, `Channel`, `Computer`, `Provider_Name`, `Provider_Guid`,
/// `TimeCreated` (the `SystemTime`), `EventRecordID`, `Level`, `Task`, `Opcode`, `Keywords`,
/// `Version`, `ProcessID`/`ThreadID` (of `Execution`), `UserID` (of `Security`), `ActivityID`.
/// Every `EventData` and `UserData` field keeps its own name (as Sigma's Windows rules expect).
pub fn normalize(event: &Value) -> Option<(Value, EventSource)> {
    let root = event.get("Event")?;
    let system = root.get("System")?.as_object()?;
    let mut out = Map::with_capacity(32);
    for (key, value) in system {
        flatten_system(key, value, &mut out);
    }
    if let Some(data) = root.get("EventData") {
        flatten_data(data, &mut out);
    }
    if let Some(Value::Object(user)) = root.get("UserData") {
        // One child element (e.g. `LogFileCleared`, `EventXML`) holding the fields.
        for (key, child) in user {
            if key.starts_with('#') {
                continue;
            }
            flatten_data(child, &mut out);
        }
    }
    let source = source_of(&out);
    Some((Value::Object(out), source))
}

fn text_of(value: &Value) -> Option<&Value> {
    match value {
        Value::Object(m) => m.get("#text"),
        other => Some(other),
    }
}

fn attribute<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    value.get("#attributes").and_then(|a| a.get(name))
}

fn flatten_system(key: &str, value: &Value, out: &mut Map<String, Value>) {
    match key {
        "Provider" => {
            if let Some(Value::Object(attrs)) = value.get("#attributes") {
                for (name, v) in attrs {
                    out.insert(format!("Provider_{name}"), v.clone());
                }
            }
        }
        "TimeCreated" => {
            if let Some(t) = attribute(value, "SystemTime") {
                out.insert("TimeCreated".into(), t.clone());
            }
        }
        "Execution" | "Security" | "Correlation" => {
            if let Some(Value::Object(attrs)) = value.get("#attributes") {
                for (name, v) in attrs {
                    out.insert(name.clone(), v.clone());
                }
            }
        }
        _ => match value {
            Value::Object(m) => {
                if let Some(t) = m.get("#text") {
                    out.insert(key.to_string(), t.clone());
                }
                if let Some(Value::Object(attrs)) = m.get("#attributes") {
                    for (name, v) in attrs {
                        out.insert(format!("{key}_{name}"), v.clone());
                    }
                }
            }
            Value::Null => {}
            other => {
                out.insert(key.to_string(), other.clone());
            }
        },
    }
}

fn flatten_data(data: &Value, out: &mut Map<String, Value>) {
    let Value::Object(fields) = data else {
        return;
    };
    for (key, value) in fields {
        if key.starts_with('#') {
            continue;
        }
        match value {
            Value::Object(m) if m.contains_key("#text") || m.contains_key("#attributes") => {
                if let Some(t) = text_of(value) {
                    out.insert(key.clone(), t.clone());
                }
            }
            Value::Object(_) => {
                // A nested element (UserData): its fields by their own names.
                flatten_data(value, out);
            }
            other => {
                out.insert(key.clone(), other.clone());
            }
        }
    }
}

fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The log source of a flattened Windows event: product `windows`, the service of its channel,
/// and the categories of its event id.
fn source_of(fields: &Map<String, Value>) -> EventSource {
    let channel = fields.get("Channel").and_then(Value::as_str).unwrap_or("");
    let event_id = fields.get("EventID").and_then(as_i64);
    let service = CHANNEL_SERVICES
        .iter()
        .find(|(c, _)| c.eq_ignore_ascii_case(channel))
        .map(|(_, s)| (*s).to_string());
    let categories: &[&str] = match event_id {
        Some(id) if channel.eq_ignore_ascii_case(SYSMON_CHANNEL) => sysmon_categories(id),
        Some(id) => powershell_categories(channel, id),
        None => &[],
    };
    EventSource {
        product: Some("windows".into()),
        service,
        categories: categories.iter().map(|c| (*c).to_string()).collect(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sysmon_event_is_flattened_and_routed() {
        let event = json!({"Event": {
            "#attributes": {"xmlns": "x"},
            "System": {
                "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon", "Guid": "G"}},
                "EventID": 13,
                "Channel": SYSMON_CHANNEL,
                "Computer": "pc",
                "TimeCreated": {"#attributes": {"SystemTime": "2025-01-01T00:00:00Z"}},
                "Correlation": null,
                "Execution": {"#attributes": {"ProcessID": 1, "ThreadID": 2}},
            },
            "EventData": {"TargetObject": "HKLM\\x", "Details": "DWORD (0x00000001)"}
        }});
        let (flat, source) = normalize(&event).unwrap();
        assert_eq!(flat["EventID"], 13);
        assert_eq!(flat["Provider_Name"], "Microsoft-Windows-Sysmon");
        assert_eq!(flat["TimeCreated"], "2025-01-01T00:00:00Z");
        assert_eq!(flat["TargetObject"], "HKLM\\x");
        assert_eq!(flat["ProcessID"], 1);
        assert_eq!(source.service.as_deref(), Some("sysmon"));
        assert_eq!(source.categories, vec!["registry_set", "registry_event"]);
    }

    #[test]
    fn qualified_event_id_and_security_channel() {
        let event = json!({"Event": {"System": {
            "EventID": {"#attributes": {"Qualifiers": 16384}, "#text": 4624},
            "Channel": "Security"},
            "EventData": {"LogonType": {"#text": 3}}}});
        let (flat, source) = normalize(&event).unwrap();
        assert_eq!(flat["EventID"], 4624);
        assert_eq!(flat["EventID_Qualifiers"], 16384);
        assert_eq!(flat["LogonType"], 3);
        assert_eq!(source.service.as_deref(), Some("security"));
        assert!(source.categories.is_empty());
    }

    #[test]
    fn not_evtx() {
        assert!(normalize(&json!({"a": 1})).is_none());
        assert!(!is_evtx(&json!({"Event": 3})));
    }
}
