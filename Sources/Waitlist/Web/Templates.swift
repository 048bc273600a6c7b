import Foundation
import Mustache

/// The Mustache templates for pages and mails, loaded once from the package's resources.
public struct Templates: Sendable {
    let library: MustacheLibrary

    /// Loads every `.mustache` file under `Resources/Templates`.
    public static func load() async throws -> Templates {
        guard let directory = Bundle.module.resourceURL?.appendingPathComponent("Templates").path else {
            throw WaitlistError(.unavailable, "The templates are missing from the installation (waitlist_Waitlist.resources).")
        }
        return Templates(library: try await MustacheLibrary(directory: directory))
    }

    /// Renders a template; a missing template is a programming error caught by the tests.
    func render(_ name: String, _ context: [String: Any]) -> String {
        guard let output = library.render(context, withTemplate: name) else {
            preconditionFailure("No template named \(name)")
        }
        return output
    }
}
