import Foundation
import Logging
import PayBridge
import ServiceLifecycle
import Synchronization
import UnixSignals

/// The signals `run` answers: SIGTERM and SIGINT stop it gracefully; SIGHUP reloads the config
/// (routes, endpoints, filters, formats, watches). A reload is checked first and applied
/// whole or not at all: a config that does not load, or that changes what cannot change under
/// a running process (`state.*`, `admin.*`), is logged with why and the running one is kept.
/// Applied, the running services stop as on SIGTERM (in-flight deliveries get
/// `delivery.shutdownGrace`, the rest stay queued) and start again on the new config.
final class Signals: Sendable {
    private struct State {
        var group: ServiceGroup?
        var stopping = false
        var next: Configuration?
    }

    private let state = Mutex(State())
    private let path: String?
    private let logger: Logger

    init(path: String?, logger: Logger) {
        self.path = path
        self.logger = logger
    }

    /// The group now running, which a signal stops.
    func running(_ group: ServiceGroup) {
        state.withLock { $0.group = group }
    }

    /// After the group ended: the configuration to start again on, or nil to stop.
    func takeReload() -> Configuration? {
        state.withLock { state in
            defer { state.next = nil }
            return state.stopping ? nil : state.next
        }
    }

    /// Answers signals until the task is cancelled; `current` is the configuration running.
    func watch(current: @escaping @Sendable () -> Configuration) async {
        for await signal in await UnixSignalsSequence(trapping: .sigterm, .sigint, .sighup) {
            if signal == .sighup {
                guard let next = reloaded(over: current()) else { continue }
                let group = state.withLock { state -> ServiceGroup? in
                    guard !state.stopping else { return nil }
                    state.next = next
                    return state.group
                }
                logger.notice("reloading the config: the running services stop gracefully and start again on it")
                await group?.triggerGracefulShutdown()
            } else {
                let group = state.withLock { state -> ServiceGroup? in
                    state.stopping = true
                    return state.group
                }
                await group?.triggerGracefulShutdown()
            }
        }
    }

    /// The new configuration, or nil (and why, logged) when it must not replace `current`.
    private func reloaded(over current: Configuration) -> Configuration? {
        guard let path else {
            logger.warning("SIGHUP: the demo has no config file to reload")
            return nil
        }
        let loaded: LoadedConfiguration
        do {
            loaded = try ConfigLoader.load(file: path)
        } catch {
            for issue in error.errors { logger.error("\(issue)") }
            logger.error("config not reloaded: it has errors; paybridge goes on with the config it runs")
            return nil
        }
        let fixed = Self.fixedSettingsChanged(from: current, to: loaded.configuration)
        guard fixed.isEmpty else {
            logger.error(
                "config not reloaded: \(fixed.joined(separator: ", ")) cannot change while paybridge runs; restart it to apply the new config",
                metadata: ["changed": "\(fixed.joined(separator: ","))"])
            return nil
        }
        for warning in loaded.warnings where warning.severity == .warning { logger.warning("\(warning)") }
        return loaded.configuration
    }

    /// Settings a running process holds open: the state it has locked and opened, and the
    /// admin server's address and token.
    static func fixedSettingsChanged(from old: Configuration, to new: Configuration) -> [String] {
        var changed: [String] = []
        let (a, b) = (old.state, new.state)
        if a.kind != b.kind || a.path != b.path || a.url?.value != b.url?.value || a.tls != b.tls || a.caFile != b.caFile {
            changed.append("state")
        }
        let tokens = { (admin: AdminConfiguration?) in (admin?.tokens ?? []).map { "\($0.name) \($0.role) \($0.token.value)" } }
        if old.admin?.listen != new.admin?.listen || tokens(old.admin) != tokens(new.admin) || old.admin?.tls?.certificate != new.admin?.tls?.certificate
            || old.admin?.tls?.key != new.admin?.tls?.key
        {
            changed.append("admin")
        }
        return changed
    }
}
