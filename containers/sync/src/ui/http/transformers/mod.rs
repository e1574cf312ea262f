pub mod changes_transformer;
