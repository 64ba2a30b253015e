import CYaml

/// The shape of a YAML document, read off libyaml's event stream before anything is composed:
/// how deeply its collections nest and how many nodes it has. Yams' composer recurses once per
/// level of nesting, so a document nested a hundred thousand levels deep (a line of "[" is
/// enough) would overflow the stack of whoever composes it; libyaml's parser keeps its own
/// stack on the heap, so walking its events is safe at any depth. The walk stops at the first
/// event past a bound. (libyaml is the copy Yams bundles as CYaml.)
enum YAMLShape {
    /// Refuses a document whose collections nest deeper than `maximumDepth` or that has more
    /// than `maximumNodes` nodes (scalars, collections and aliases, each counted once). A
    /// document libyaml cannot parse passes: the composer reports its syntax error, having met
    /// no more nesting than was counted here before the error.
    static func check(_ text: String, maximumDepth: Int, maximumNodes: Int) throws(SyntaxError) {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else { throw SyntaxError(line: 1, message: "cannot start the YAML parser") }
        defer { yaml_parser_delete(&parser) }
        let bytes = Array(text.utf8)
        try bytes.withUnsafeBufferPointer { input throws(SyntaxError) in
            yaml_parser_set_input_string(&parser, input.baseAddress, input.count)
            var depth = 0
            var nodes = 0
            while true {
                var event = yaml_event_t()
                guard yaml_parser_parse(&parser, &event) == 1 else { return }
                defer { yaml_event_delete(&event) }
                let line = Int(event.start_mark.line) + 1
                switch event.type {
                case YAML_STREAM_END_EVENT:
                    return
                case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
                    depth += 1
                    nodes += 1
                    guard depth <= maximumDepth else { throw SyntaxError(line: line, message: "nested too deeply") }
                case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                    depth -= 1
                case YAML_SCALAR_EVENT, YAML_ALIAS_EVENT:
                    nodes += 1
                default:
                    continue
                }
                guard nodes <= maximumNodes else {
                    throw SyntaxError(line: line, message: "too many nodes (more than \(maximumNodes))")
                }
            }
        }
    }
}
