"""Thin async resolvers: arguments -> loader or datasource call -> schema type.

They import schema modules as modules (not names) because the schema modules import
them back to declare `resolver=`; annotations are resolved lazily by Strawberry.

Nested-field resolvers take `root: Any` (the parent schema object, e.g. a Patient):
Strawberry evaluates a `root` annotation while those modules are still importing.
"""
