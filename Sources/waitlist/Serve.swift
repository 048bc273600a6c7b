import ArgumentParser
import Hummingbird
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import Waitlist

/// `waitlist serve`: the web service and its mail worker.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the web service and its mail worker.")

    @Option(name: .long, help: "The address to listen on.")
    var hostname = "127.0.0.1"

    @Option(name: .long, help: "The port to listen on.")
    var port = 8080

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be from 0 to 65535.") }
    }

    func run() async throws {
        try await withRuntime(signsMail: true) { runtime in
            try runtime.database.checkIntegrity(path: runtime.settings.databasePath)
            let metrics = PrometheusCollectorRegistry()
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: metrics))
            let sender = runtime.makeSender(logger: Logger(label: "waitlist.mail"))
            let dependencies = AppDependencies(
                settings: runtime.settings, database: runtime.database, templates: runtime.templates, metrics: metrics,
                mailQueued: { sender.wake() })
            runtime.logger.info(
                "Serving",
                metadata: [
                    "address": "http://\(hostname):\(port)", "database": "\(runtime.settings.databasePath)",
                    "mail": "\(runtime.transportDescription)",
                ])
            var services: [any Service] = [
                OutboxWorker(sender: sender, logger: Logger(label: "waitlist.mail")),
                RetentionJob(database: runtime.database, logger: Logger(label: "waitlist.retention")),
                try WALCheckpointer(database: runtime.database, logger: Logger(label: "waitlist.storage")),
            ]
            if let metricsAddress = runtime.settings.metricsAddress {
                services.append(
                    buildMetricsApplication(
                        dependencies, hostname: metricsAddress.host, port: metricsAddress.port, logger: Logger(label: "waitlist.metrics")))
            }
            let app = try buildApplication(
                dependencies, hostname: hostname, port: port, services: services, logger: Logger(label: "waitlist.http"))
            do {
                try await app.runService()
            } catch {
                throw WaitlistError(.unavailable, "The service stopped: \(error).")
            }
        }
    }
}
