"""Record rules of each emulated API (binding, validation, computed fields, output shape), free of HTTP."""
