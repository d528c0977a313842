//! Host bindings generated from `wit/`.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "defender",
    imports: { default: async },
    exports: { default: async },
    additional_derives: [PartialEq, Eq],
});
