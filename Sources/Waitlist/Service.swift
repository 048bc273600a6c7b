import Foundation
import Hummingbird
import Logging
import NIOCore
import Prometheus
import ServiceLifecycle
import WaitlistCore
import WaitlistDelivery
import WaitlistStore
import WaitlistWeb

extension Runtime {
    /// The service as `waitlist serve` runs it: the HTTP server and, beside it, the mail worker
    /// (woken by every signup that queues mail), the retention job, the WAL checkpointer and, when
    /// `WAITLIST_METRICS_ADDRESS` is set, the metrics listener. The CLI and the tests both build it
    /// here, so a test runs what an operator runs.
    ///
    /// - Parameters:
    ///   - hostname, port: where the HTTP server listens (port 0: any free port).
    ///   - metrics: the registry `/metrics` reads; the caller bootstraps the metrics system with it.
    ///   - onServerRunning: told the bound channel once the server listens (tests read the port).
    public func makeService(
        hostname: String, port: Int, metrics: PrometheusCollectorRegistry,
        onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
    ) throws -> some ApplicationProtocol {
        let sender = makeSender(logger: Logger(label: "waitlist.mail"))
        let dependencies = AppDependencies(
            settings: settings, database: database, templates: templates, publicDirectory: try settings.staticFilesDirectory(),
            metrics: metrics, mailQueued: { sender.wake() })
        var services: [any Service] = [
            OutboxWorker(sender: sender, logger: Logger(label: "waitlist.mail")),
            RetentionJob(database: database, logger: Logger(label: "waitlist.retention")),
            try WALCheckpointer(database: database, logger: Logger(label: "waitlist.storage")),
        ]
        if let metricsAddress = settings.metricsAddress {
            services.append(
                buildMetricsApplication(
                    dependencies, hostname: metricsAddress.host, port: metricsAddress.port, logger: Logger(label: "waitlist.metrics")))
        }
        return try buildApplication(
            dependencies, hostname: hostname, port: port, services: services, logger: Logger(label: "waitlist.http"),
            onServerRunning: onServerRunning)
    }
}
