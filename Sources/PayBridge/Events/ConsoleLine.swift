import Foundation

/// One readable line per event, for the demo's console:
/// `21:04:05  Rejected ← PendingProcessing  19.00 EUR  Müller & Söhne GmbH  ref INV-1  0b9f…`.
public enum ConsoleLine {
    public static func render(_ body: [UInt8]) -> String {
        guard let root = try? JSONValue.parse(body), let type = root["type"]?.stringValue, let data = root["data"] else {
            return String(decoding: body, as: UTF8.self)
        }
        let time = root["timestamp"]?.stringValue.map { String($0.dropFirst(11).prefix(8)) } ?? ""
        if type == EventType.paymentGroup.rawValue {
            let group = GroupFacts(data: data)
            return "\(time)  \(group.title)" + (group.totals.isEmpty ? "" : "  \(group.totals.joined(separator: ", "))")
        }
        guard data["payment"] != nil else {
            // endpoint.disabled, source.*: the type and what it is about.
            let about = ["endpoint", "source", "reason", "error"].compactMap { data[$0]?.stringValue }.joined(separator: "  ")
            return "\(time)  \(type)  \(about)"
        }
        let facts = PaymentFacts(data: data)
        let change = facts.previousStatus.map { "\(facts.status) ← \($0)" } ?? "\(facts.status) (new)"
        var parts = [change, facts.amountText, facts.creditor, facts.reference.map { "ref \($0)" }, facts.paymentId].compactMap { $0 }
        if facts.watch == NotificationsConfiguration.watchName { parts.append(byNotification(root, data)) }
        return "\(time)  " + parts.joined(separator: "  ")
    }

    /// `by notification, 0.6 s after the change`: how the bank's push beat the poller.
    private static func byNotification(_ root: JSONValue, _ data: JSONValue) -> String {
        guard let created = root["timestamp"]?.stringValue.flatMap(Timestamp.parse),
            let changed = data["payment"]?["latestStatusChangedTimestamp"]?.stringValue.flatMap(Timestamp.parse)
        else { return "by notification" }
        return "by notification, \(String(format: "%.1f", max(0, created.timeIntervalSince(changed)))) s after the change"
    }
}
