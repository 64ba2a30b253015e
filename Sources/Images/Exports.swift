// Images builds on ImageLayers' tar streams, layer paths and errors; whoever imports Images
// sees them too.
@_exported import ImageLayers
