import Foundation
import Glibc
import Testing

@testable import Waitlist
@testable import WaitlistCore
@testable import WaitlistDelivery
@testable import WaitlistMail
@testable import WaitlistStore
@testable import WaitlistWeb

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

@Suite("Built-in static files")
struct BuiltInFilesTests {
    /// The sources' `Public/` folder.
    static let publicFolder = repositoryRoot.appendingPathComponent("Public")

    @Test("The resource bundle holds every file of Public/, byte for byte")
    func bundleCopyMatchesPublic() throws {
        let bundled = URL(fileURLWithPath: try BuiltInFiles.directory())
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.publicFolder.path).filter { !$0.hasPrefix(".") }.sorted()
        #expect(names.contains("styles.css"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: bundled.path).sorted() == names)
        for name in names {
            #expect(
                try Data(contentsOf: bundled.appendingPathComponent(name))
                    == Data(contentsOf: Self.publicFolder.appendingPathComponent(name)),
                "\(name)")
        }
    }

    @Test("serve started outside the repository serves the built-in styles, script and icon with their types and validators")
    func serveOutsideTheRepositoryServesStaticFiles() async throws {
        let cli = try CLIHarness()
        defer { cli.cleanUp() }
        #expect(!FileManager.default.fileExists(atPath: cli.directory.appendingPathComponent("Public").path))
        let port = try SMTPTestServer.freePort()
        let serve = try cli.start(["serve", "--port", String(port)])
        defer {
            kill(serve.processIdentifier, SIGTERM)
            serve.waitUntilExit()
        }
        let base = "http://127.0.0.1:\(port)"
        let page = try await Self.fetch("\(base)/")
        #expect(page.status == 200)
        #expect(page.text.contains(#"<link rel="stylesheet" href="/styles.css">"#))
        for (name, type) in [("styles.css", "text/css"), ("embed-frame.js", "javascript"), ("favicon.svg", "image/svg+xml")] {
            let file = try await Self.fetch("\(base)/\(name)")
            #expect(file.status == 200, "\(name)")
            #expect(file.header("Content-Type")?.contains(type) == true, "\(name): \(file.header("Content-Type") ?? "none")")
            #expect(file.header("ETag") != nil && file.header("Last-Modified") != nil, "\(name)")
            #expect(file.body == (try Data(contentsOf: Self.publicFolder.appendingPathComponent(name))), "\(name)")
        }
    }

    @Test("WAITLIST_PUBLIC_DIR's files are served instead of the built-in ones")
    func publicDirectoryOverrides() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("waitlist-public-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }  // a leftover temporary folder harms nothing
        try Data("body { color: rebeccapurple; }\n".utf8).write(to: folder.appendingPathComponent("styles.css"))
        var world = try await TestWorld.make()
        world.settings = try Settings(environment: ["WAITLIST_PUBLIC_DIR": folder.path])
        try await world.application().test(.router) { client async throws in
            let styles = try await client.get("/styles.css")
            #expect(styles.status == .ok)
            #expect(styles.text == "body { color: rebeccapurple; }\n")
            #expect(try await client.get("/favicon.svg").status == .notFound)
        }
    }

    /// What one GET answered.
    struct Fetched {
        var response: HTTPURLResponse
        var body: Data
        var status: Int { response.statusCode }
        var text: String { String(decoding: body, as: UTF8.self) }
        func header(_ name: String) -> String? { response.value(forHTTPHeaderField: name) }
    }

    /// GETs `address`, retrying for up to 60 s while nothing listens there yet (serve is starting).
    static func fetch(_ address: String) async throws -> Fetched {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(60)
        while true {
            do {
                let (data, response) = try await URLSession.shared.data(from: try #require(URL(string: address)))
                return Fetched(response: try #require(response as? HTTPURLResponse), body: data)
            } catch let error as URLError where error.code == .cannotConnectToHost && clock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }
}
