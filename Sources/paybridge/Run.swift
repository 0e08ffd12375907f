import ArgumentParser
import Foundation
import Logging
import Metrics
import PayBridge
import Prometheus
import ServiceLifecycle
import Synchronization

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Poll on every watch's interval and deliver continuously until SIGINT or SIGTERM.",
        discussion: """
            Without --config, runs the demo: the sandbox bank in-process, state in a temporary folder (removed at the end)
            and a console endpoint printing one line per event (--json: the event as delivered).
            On a terminal a live status line shows the watches, events today, the queue and failing endpoints.
            Examples:
              paybridge run
              paybridge run --config paybridge.yaml --log-format json
            """)

    @Option(name: .long, help: "The config file (default: $PAYBRIDGE_CONFIG; without either, the demo).")
    var config: String?

    @Flag(name: .long, help: "The demo's console prints each event as delivered (JSON) instead of a readable line.")
    var json = false

    @OptionGroup var common: CommonOptions

    func run() async throws {
        let logger = common.bootstrapLogging()
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        MetricHelp.registerBuildInfo(in: registry)
        let configuration: Configuration
        let config = self.config ?? ProcessInfo.processInfo.environment["PAYBRIDGE_CONFIG"].flatMap { $0.isEmpty ? nil : $0 }
        if let config {
            configuration = try loadConfiguration(config, warnings: common.showsWarnings, logger: common.logsJSON ? logger : nil)
        } else {
            configuration = try DemoSandbox.demoConfiguration()
            logger.info("no --config: running the demo (sandbox bank in-process, events below)", metadata: ["state": "\(configuration.state.path)"])
        }
        let demo = config == nil
        defer { if demo { try? FileManager.default.removeItem(atPath: configuration.state.path) } }
        let sandbox = try await DemoSandbox.startIfNeeded(for: configuration, logger: logger, demo: demo)
        if demo { await sandbox?.subscribe(configuration, logger: logger) }
        // The demo's console: a readable line per event, unless --json.
        let readable = demo && !json
        let console: @Sendable ([UInt8]) -> Void = { body in
            Terminal.shared.output(line: readable ? ConsoleLine.render(body) : String(decoding: body, as: UTF8.self))
        }
        // A state folder that cannot be opened (read-only, full, locked) is waited out: the
        // operator sees one line and paybridge starts as soon as it clears.
        var opened: Bridge?
        // The system's clock, or a test's (`PAYBRIDGE_TEST_CLOCK`).
        let clock = WallClock.fromEnvironment()
        var announced = false
        var lock: StateLock?
        defer { withExtendedLifetime(lock) {} }
        while opened == nil {
            do {
                if lock == nil { lock = try lockState(configuration) }
                opened = try await Bridge(configuration: configuration, apiURL: sandbox?.apiURL, logger: logger, console: console, clock: clock)
            } catch StateLockError.held(let folder) {
                // Another run or poll delivers from this state: waiting would only deliver twice later.
                logger.critical("\(StateLockError.held(folder: folder))")
                throw ExitCode(1)
            } catch {
                if !announced {
                    let text = (error as? StateLockError)?.message(configuration).dropFirst("error: ".count).description ?? "\(error)"
                    logger.error("\(text); retrying every 2 s until it opens")
                    announced = true
                } else {
                    logger.debug("the state database still cannot be opened: \(error)")
                }
                try await clock.sleep(for: .seconds(2))
            }
        }
        guard var bridge = opened else { return }
        if announced { logger.notice("state database opened") }
        await announceResume(after: lock, bridge: bridge, logger: logger)
        // SIGTERM/SIGINT stop; SIGHUP reloads the config (see Signals).
        let signals = Signals(path: config, logger: logger)
        let running = Mutex(configuration)
        let listener = Task { await signals.watch(current: { running.withLock { $0 } }) }
        defer { listener.cancel() }
        var failure: (any Error)?
        while true {
            let current = running.withLock { $0 }
            var services = bridge.services()
            if let admin = current.admin {
                do {
                    services.insert(try AdminServer.application(admin, bridge: bridge, registry: registry, logger: logger), at: 0)
                } catch {
                    logger.critical("\(error)")
                    bridge.close()
                    throw ExitCode(1)
                }
            }
            do {
                if let receiver = try bridge.notificationReceiver() { services.insert(receiver, at: 0) }
            } catch {
                logger.critical("\(error)")
                bridge.close()
                throw ExitCode(1)
            }
            // A JSON log stays one object a line: no status line drawn between them.
            if Terminal.shared.isInteractive, !common.logsJSON { services.append(StatusLine(bridge: bridge)) }
            let group = ServiceGroup(
                configuration: ServiceGroupConfiguration(
                    services: services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) }, logger: logger))
            signals.running(group)
            logger.info(
                "started",
                metadata: [
                    "watches": "\(current.source.watches.map(\.name).joined(separator: ","))",
                    "endpoints": "\(current.endpoints.map(\.name).joined(separator: ","))",
                ])
            // Beside the start, not before it: a state slow to answer delays no service.
            Task { [bridge] in await bridge.warnAboutRemovedEndpoints() }
            do {
                try await group.run()
            } catch {
                failure = error
                logger.critical("stopped on an error: \(error)")
            }
            Terminal.shared.show(status: nil)
            bridge.close()
            guard failure == nil, let next = signals.takeReload() else { break }
            do {
                bridge = try await Bridge(configuration: next, apiURL: sandbox?.apiURL, logger: logger, console: console, clock: clock)
            } catch {
                failure = error
                logger.critical("stopped: the reloaded config's state cannot be opened: \(error)")
                break
            }
            running.withLock { $0 = next }
            logger.notice("config reloaded")
        }
        await sandbox?.stop()
        // A service manager restarts on a non-zero exit, and an operator's script sees it.
        if failure != nil { throw ExitCode(1) }
        lock?.markStopped()
        logger.info("stopped")
    }
}

/// The live status line of `paybridge run` on a terminal, redrawn every second:
/// `recent 2 s ago ✓ · failures 1 s ago ✗ · 42 events today · queue 3 · failing: erp`.
struct StatusLine: Service {
    let bridge: Bridge

    func run() async throws {
        await cancelWhenGracefulShutdown {
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = TimeZone(identifier: "UTC") ?? .current
            while !Task.isCancelled {
                let now = Date()
                let watches = bridge.watches.map { watch -> String in
                    let last = [watch.lastSuccessAt, watch.lastFailureAt].compactMap { $0 }.max()
                    guard let last else { return "\(watch.name) waiting" }
                    let ok = watch.lastSuccessAt == last
                    return "\(watch.name) \(Output.relative(last, now: now)) \(ok ? "✓" : "✗")"
                }
                let today = await bridge.operations.eventCount(since: calendar.startOfDay(for: now))
                let queue = await bridge.operations.pendingDeliveries()
                let failing = bridge.dispatcher.endpointStatuses.filter { $0.failures > 0 || $0.state != .closed }.map(\.name)
                var parts = watches + [Output.count(today, "event") + " today", "queue \(queue)"]
                if !failing.isEmpty { parts.append("failing: " + failing.joined(separator: ", ")) }
                Terminal.shared.show(status: "paybridge · " + parts.joined(separator: " · "))
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }
}
