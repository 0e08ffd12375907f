import Foundation
import Logging
import ServiceLifecycle

/// One paybridge: the store, the bank client, the poller and the dispatcher, wired from a
/// configuration. The CLI is a thin layer over this type; tests drive it directly too.
public final class Bridge: Sendable {
    public let configuration: Configuration
    public let store: SQLiteStore
    public let dispatcher: Dispatcher
    let poller: Poller
    private let http: CurlHTTPClient
    private let logger: Logger

    /// - Parameters:
    ///   - apiURL: the bank's base URL when the config has none (the in-process sandbox).
    ///   - console: where console endpoints write.
    public init(
        configuration: Configuration, apiURL: String? = nil, logger: Logger,
        console: (@Sendable ([UInt8]) -> Void)? = nil
    ) throws {
        self.configuration = configuration
        self.logger = logger
        let http = CurlHTTPClient()
        self.http = http
        do {
            store = try SQLiteStore(directory: configuration.state.path)
        } catch {
            http.shutdown()
            throw StateUnavailable(path: configuration.state.path, underlying: error)
        }
        let client = BankingCircleClient(
            source: configuration.source, apiURL: apiURL, authURL: apiURL, http: http, logger: logger)
        if let console {
            dispatcher = Dispatcher(endpoints: configuration.endpoints, store: store, http: http, logger: logger, console: console)
        } else {
            dispatcher = Dispatcher(endpoints: configuration.endpoints, store: store, http: http, logger: logger)
        }
        let dispatcher = self.dispatcher
        poller = Poller(
            source: client, store: store, routes: RouteTable(routes: configuration.routes), pageSize: configuration.source.pageSize,
            logger: logger, onQueued: { dispatcher.wake() })
    }

    /// What `pollOnce` did.
    public struct OnceResult: Sendable {
        public var reports: [PollReport]
        public var failures: [PollError]
    }

    /// Polls every watch once, then attempts every delivery due now; deliveries that fail are
    /// left queued for their next retry.
    public func pollOnce() async -> OnceResult {
        let result = await pollWatches()
        await dispatcher.run(.drain(dueBy: Date()))
        return result
    }

    /// Polls every watch once, one after the other, without delivering.
    public func pollWatches() async -> OnceResult {
        var result = OnceResult(reports: [], failures: [])
        for watch in configuration.source.watches {
            do {
                let report = try await poller.poll(watch)
                log(report)
                result.reports.append(report)
            } catch {
                logger.error("poll failed", metadata: ["watch": "\(watch.name)", "error": "\(error)"])
                result.failures.append(error)
            }
        }
        return result
    }

    /// The long-running parts, for a `ServiceGroup`: the dispatcher first, so it is the last
    /// to stop (graceful shutdown runs in reverse order), then one loop per watch.
    public func services() -> [any Service] {
        var services: [any Service] = [DeliveryService(dispatcher: dispatcher, grace: configuration.delivery.shutdownGrace)]
        for watch in configuration.source.watches {
            services.append(WatchService(bridge: self, watch: watch))
        }
        return services
    }

    /// Releases the transport; call once everything has stopped.
    public func close() {
        http.shutdown()
    }

    func log(_ report: PollReport) {
        let metadata: Logger.Metadata = [
            "watch": "\(report.watch)", "pages": "\(report.pages)", "payments": "\(report.payments)",
            "created": "\(report.created)", "changed": "\(report.changed)", "recorded": "\(report.recorded)",
            "lookups": "\(report.lookups)",
        ]
        if report.baseline {
            logger.info("baseline poll done: payments recorded without events", metadata: metadata)
        } else if report.events > 0 {
            logger.info("poll found changes", metadata: metadata)
        } else {
            logger.debug("poll found no change", metadata: metadata)
        }
    }
}

/// The state folder could not be opened.
public struct StateUnavailable: Error, CustomStringConvertible {
    public var path: String
    public var underlying: any Error

    public var description: String { "cannot open the state database in \(path): \(underlying)" }
}

/// Polls one watch on its interval until a graceful shutdown; a shutdown stops it between pages.
struct WatchService: Service {
    let bridge: Bridge
    let watch: Watch

    func run() async throws {
        await cancelWhenGracefulShutdown {
            let clock = ContinuousClock()
            while !Task.isCancelled {
                let started = clock.now
                do {
                    let report = try await bridge.poller.poll(watch, shouldStop: { Task.isCancelled })
                    bridge.log(report)
                } catch {
                    bridge.poller.logger.error("poll failed", metadata: ["watch": "\(watch.name)", "error": "\(error)"])
                }
                let elapsed = clock.now - started
                try? await Task.sleep(for: max(.zero, watch.every - elapsed))
            }
        }
    }
}

/// Runs the dispatcher until a graceful shutdown, then gives in-flight deliveries `grace`.
struct DeliveryService: Service {
    let dispatcher: Dispatcher
    let grace: Duration

    func run() async throws {
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await dispatcher.run(.continuous)
            } onGracefulShutdown: {
                dispatcher.stop(grace: grace)
            }
        } onCancel: {
            dispatcher.stop(grace: .zero)
        }
    }
}
