import Foundation
import Mustache

/// The Mustache templates for pages and mails, loaded once from the installation's resources.
public struct Templates: Sendable {
    let library: MustacheLibrary

    /// Loads every `.mustache` file under `directory` (the installation's `Templates`, which the
    /// `Waitlist` target's resources hold).
    public static func load(directory: String) async throws -> Templates {
        Templates(library: try await MustacheLibrary(directory: directory))
    }

    /// Renders a template; a missing template is a programming error caught by the tests.
    package func render(_ name: String, _ context: [String: Any]) -> String {
        guard let output = library.render(context, withTemplate: name) else {
            preconditionFailure("No template named \(name)")
        }
        return output
    }
}
