//! Derive macros for troupe.
//!
//! - [`macro@Message`]: implements `troupe_runtime::Message` (the wire name and version of a
//!   message type) from one attribute, so naming a message is never a hand-written impl.
//! - [`macro@Request`]: implements `troupe_runtime::Request` (a request with one kind of
//!   answer, sent as `Ask<Self>`): the same keys plus `response = Type`.
//!
//! Use them through the `troupe` facade (`use troupe::prelude::*;` brings the derive in) or
//! `troupe_runtime::Message`.

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::quote;
use syn::{DeriveInput, LitInt, LitStr, parse_macro_input};

/// Implements `Message` for a struct or enum: its stable wire name and encoding version.
///
/// ```ignore
/// #[derive(Serialize, Deserialize, Message)]
/// #[message(name = "shop.Counter", version = 2, min_version = 1)]
/// enum CounterMsg {
///     Add(u64),
///     Get(Reply<u64>),
/// }
/// ```
///
/// - `name`: the stable, cluster-unique name on the wire. Without it the name is the type's
///   module path and name (`my_crate::counter::CounterMsg`), which changes if the type moves:
///   give an explicit name to any type that nodes of different builds exchange.
/// - `version` (default 1): the encoding this node writes; bump it on incompatible changes.
/// - `min_version` (default `version`): the oldest encoding this node still reads.
///
/// The generated impl names the trait as `Message`, the name the derive itself is used under:
/// `use troupe::prelude::*;` (or `use troupe_runtime::Message;`) brings the derive and the
/// trait in together. Where the trait is not in scope, `crate = "path"` names the crate that
/// exports it (`crate = "troupe"` or `crate = "troupe_runtime"`).
#[proc_macro_derive(Message, attributes(message))]
pub fn derive_message(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

/// Implements `Request` for a struct or enum: its wire name, version and response type.
///
/// ```ignore
/// #[derive(Serialize, Deserialize, Request)]
/// #[request(name = "shop.Lookup", response = Option<Item>)]
/// struct Lookup { id: String }
/// ```
///
/// Keys as for [`macro@Message`] (`name`, `version`, `min_version`, `crate`), plus the
/// required `response`: the type the request is answered with.
#[proc_macro_derive(Request, attributes(request))]
pub fn derive_request(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand_kind(&input, Kind::Request) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Message,
    Request,
}

fn expand(input: &DeriveInput) -> syn::Result<proc_macro2::TokenStream> {
    expand_kind(input, Kind::Message)
}

fn expand_kind(input: &DeriveInput, kind: Kind) -> syn::Result<proc_macro2::TokenStream> {
    let attr_name = match kind {
        Kind::Message => "message",
        Kind::Request => "request",
    };
    let mut response: Option<syn::Type> = None;
    let mut name: Option<LitStr> = None;
    let mut version: Option<LitInt> = None;
    let mut min_version: Option<LitInt> = None;
    let mut krate: Option<syn::Path> = None;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident(attr_name)) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                let lit: LitStr = meta.value()?.parse()?;
                if lit.value().is_empty() {
                    return Err(meta.error("a message name must not be empty"));
                }
                name = Some(lit);
            } else if meta.path.is_ident("version") {
                version = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("min_version") {
                min_version = Some(meta.value()?.parse()?);
            } else if kind == Kind::Request && meta.path.is_ident("response") {
                response = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("crate") {
                let lit: LitStr = meta.value()?.parse()?;
                krate = Some(lit.parse()?);
            } else {
                return Err(meta.error(match kind {
                    Kind::Message => {
                        "unknown #[message] key: expected `name`, `version`, `min_version` or `crate`"
                    }
                    Kind::Request => {
                        "unknown #[request] key: expected `name`, `response`, `version`, `min_version` or `crate`"
                    }
                }));
            }
            Ok(())
        })?;
    }
    let check_u16 = |lit: &LitInt| -> syn::Result<u16> {
        lit.base10_parse::<u16>()
            .map_err(|_| syn::Error::new(lit.span(), "a message version is a u16"))
    };
    let version_value = match &version {
        Some(v) => check_u16(v)?,
        None => 1,
    };
    if let Some(min) = &min_version
        && check_u16(min)? > version_value
    {
        return Err(syn::Error::new(
            min.span(),
            "min_version must not be greater than version",
        ));
    }
    let ident = &input.ident;
    let trait_path: syn::Path = match (krate, kind) {
        (Some(krate), Kind::Message) => syn::parse_quote!(#krate::Message),
        (None, Kind::Message) => syn::parse_quote!(Message),
        (Some(krate), Kind::Request) => syn::parse_quote!(#krate::Request),
        (None, Kind::Request) => syn::parse_quote!(Request),
    };
    let response_item = match (kind, response) {
        (Kind::Message, _) => None,
        (Kind::Request, Some(ty)) => Some(quote!(type Response = #ty;)),
        (Kind::Request, None) => {
            return Err(syn::Error::new(
                Span::call_site(),
                "#[derive(Request)] needs #[request(response = Type)]",
            ));
        }
    };
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let name_expr = match &name {
        Some(lit) => quote!(#lit),
        None => {
            let type_name = LitStr::new(&ident.to_string(), Span::call_site());
            quote!(::core::concat!(::core::module_path!(), "::", #type_name))
        }
    };
    let version_item = version.map(|v| quote!(const VERSION: u16 = #v;));
    let min_version_item = min_version.map(|v| quote!(const MIN_VERSION: u16 = #v;));
    Ok(quote! {
        impl #impl_generics #trait_path for #ident #ty_generics #where_clause {
            const NAME: &'static str = #name_expr;
            #version_item
            #min_version_item
            #response_item
        }
    })
}
