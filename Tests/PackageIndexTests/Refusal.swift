import PackageIndex
import Testing

/// The message a parser refused with, nil when it accepted.
func refusal<T>(_ body: () throws -> T) -> String? {
    do {
        _ = try body()
        return nil
    } catch let error as PackageIndexError {
        return error.description
    } catch {
        return "an error that is not a PackageIndexError: \(error)"
    }
}

/// Expects a refusal whose message holds `needle`.
func expectRefused<T>(_ needle: String, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> T) {
    let message = refusal(body)
    #expect(message?.contains(needle) == true, "got \(message ?? "an acceptance"), expected a refusal naming \(needle)", sourceLocation: sourceLocation)
}

func version(_ text: String) throws -> Version { try Version(parsing: text) }
