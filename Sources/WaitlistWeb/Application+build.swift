import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Prometheus
import ServiceLifecycle
import WaitlistCore
import WaitlistStore

/// Everything the web service needs, handed in from outside: no globals, no singletons.
public struct AppDependencies: Sendable {
    public var settings: Settings
    public var database: AppDatabase
    public var templates: Templates
    /// The static files (`Public/`): the installation's, or `WAITLIST_PUBLIC_DIR`.
    public var publicDirectory: String
    /// Where `/metrics` reads from.
    public var metrics: PrometheusCollectorRegistry
    /// Told when a signup queued mail (wakes the mail worker).
    public var mailQueued: @Sendable () -> Void
    /// The current time; tests move it.
    public var now: @Sendable () -> Date

    public init(
        settings: Settings, database: AppDatabase, templates: Templates, publicDirectory: String,
        metrics: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
        mailQueued: @escaping @Sendable () -> Void = {}, now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.settings = settings
        self.database = database
        self.templates = templates
        self.publicDirectory = publicDirectory
        self.metrics = metrics
        self.mailQueued = mailQueued
        self.now = now
    }
}

/// Builds the web application: the router with every route of the contract, and the services
/// that start and stop with it (the mail worker, the retention job).
///
/// - Parameters:
///   - dependencies: the database, templates, settings and clock.
///   - hostname, port: where to listen.
///   - services: long-running work to run beside the HTTP server (none in tests, which drive mail themselves).
///   - onServerRunning: told the bound channel once the server listens.
public func buildApplication(
    _ dependencies: AppDependencies, hostname: String, port: Int, services: [any Service], logger: Logger,
    onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
) throws -> some ApplicationProtocol {
    Application(
        router: try buildRouter(dependencies),
        // A client that says nothing for 30 seconds is disconnected.
        server: .http1(configuration: .init(idleTimeout: .seconds(30))),
        configuration: .init(address: .hostname(hostname, port: port), serverName: "waitlist"),
        services: services,
        onServerRunning: onServerRunning,
        logger: logger)
}

/// Builds the router: middleware (errors as pages, security headers, static files, metrics,
/// request logs) and the controllers.
public func buildRouter(_ dependencies: AppDependencies) throws -> Router<AppRequestContext> {
    let router = Router(context: AppRequestContext.self, options: .autoGenerateHeadEndpoints)
    let pages = Pages(templates: dependencies.templates)
    let database = dependencies.database
    let clientAddresses = ClientAddressResolver(trustedProxies: dependencies.settings.trustedProxies)
    let publicDirectory = dependencies.publicDirectory
    router.addMiddleware {
        HeadWithoutBodyMiddleware()
        LogRequestsMiddleware(.debug)
        MetricsMiddleware()
        SecurityHeadersMiddleware(
            isHTTPS: dependencies.settings.baseURL.lowercased().hasPrefix("https://"),
            framing: EmbedFraming(allowedOrigins: dependencies.settings.allowedOrigins))
        ErrorPageMiddleware(pages: pages)
        StaticFilesMiddleware(directory: publicDirectory)
    }
    let settings = dependencies.settings
    let coursePages = CoursePageController(
        database: database, pages: pages, formStamp: FormStamp(key: try database.secret(named: "signup-form-stamp")),
        privacyURL: dependencies.settings.privacyURL, now: dependencies.now)
    coursePages.addRoutes(to: router)
    let signups = SignupController(
        database: database, coursePages: coursePages, clientAddresses: clientAddresses,
        rateLimiter: settings.signupRateLimit.map { SignupRateLimiter(rate: $0) }, formStamp: coursePages.formStamp,
        origins: OriginPolicy(baseURL: settings.baseURL, allowedOrigins: settings.allowedOrigins), mailQueued: dependencies.mailQueued,
        now: dependencies.now)
    signups.addRoutes(to: router)
    EmbedController(coursePages: coursePages, signups: signups).addRoutes(to: router)
    TokenPagesController(database: database, pages: pages, clientAddresses: clientAddresses, now: dependencies.now).addRoutes(to: router)
    OperationsController(database: database).addRoutes(to: router)
    return router
}

/// Builds the metrics listener (`WAITLIST_METRICS_ADDRESS`): `GET /metrics` and nothing else.
public func buildMetricsApplication(_ dependencies: AppDependencies, hostname: String, port: Int, logger: Logger)
    -> some ApplicationProtocol
{
    Application(
        router: buildMetricsRouter(dependencies),
        configuration: .init(address: .hostname(hostname, port: port), serverName: "waitlist-metrics"),
        logger: logger)
}

/// The metrics listener's router.
public func buildMetricsRouter(_ dependencies: AppDependencies) -> Router<BasicRequestContext> {
    let router = Router(options: .autoGenerateHeadEndpoints)
    router.addMiddleware { HeadWithoutBodyMiddleware() }
    MetricsController(database: dependencies.database, metrics: dependencies.metrics).addRoutes(to: router)
    return router
}
