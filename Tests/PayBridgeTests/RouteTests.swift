import Testing

@testable import PayBridge

@Suite struct RouteTests {
    let rejected = RoutableEvent(type: "payment.status_changed", status: "Rejected", previousStatus: "PendingProcessing", watch: "recent")
    let processed = RoutableEvent(type: "payment.status_changed", status: "Processed", previousStatus: "PendingProcessing", watch: "recent")
    let created = RoutableEvent(type: "payment.created", status: "PendingProcessing", previousStatus: nil, watch: "recent")

    @Test func everyMatchingTopLevelRouteDeliversOnce() {
        let table = RouteTable(routes: [
            Route(to: ["erp"]),
            Route(when: RouteMatcher(status: ["Rejected", "MissingFunding"]), to: ["alerts", "erp"]),
        ])
        #expect(table.endpoints(for: rejected) == ["erp", "alerts"])
        #expect(table.endpoints(for: processed) == ["erp"])
    }

    @Test func matchersAndAllFields() {
        let matcher = RouteMatcher(status: ["Rejected"], previousStatus: ["PendingProcessing"], type: ["payment.status_changed"], watch: ["recent"])
        #expect(matcher.matches(rejected))
        #expect(!matcher.matches(processed))
        #expect(!RouteMatcher(previousStatus: ["PendingProcessing"]).matches(created))
        #expect(RouteMatcher(type: ["payment.created"]).matches(created))
    }

    @Test func firstMatchingChildWinsUnlessItContinues() {
        let tree = Route(
            to: ["default"],
            routes: [
                Route(when: RouteMatcher(status: ["Rejected"]), to: ["alerts"]),
                Route(when: RouteMatcher(type: ["payment.status_changed"]), to: ["chat"]),
            ])
        #expect(RouteTable(routes: [tree]).endpoints(for: rejected) == ["alerts"])
        #expect(RouteTable(routes: [tree]).endpoints(for: processed) == ["chat"])
        #expect(RouteTable(routes: [tree]).endpoints(for: created) == ["default"])

        var continuing = tree
        continuing.routes[0].continueMatching = true
        #expect(RouteTable(routes: [continuing]).endpoints(for: rejected) == ["alerts", "chat"])
    }
}
