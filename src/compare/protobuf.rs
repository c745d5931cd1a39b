//! A service's descriptor set (`compare.protobuf`): which methods it describes, how
//! (streaming, idempotent), and a message decoded into JSON under proto3's rules.

use prost_reflect::{
    DescriptorPool, DynamicMessage, MessageDescriptor, MethodDescriptor, SerializeOptions, Value,
};

/// A descriptor set, as `protoc --descriptor_set_out` or `buf build -o` write it.
#[derive(Clone)]
pub struct Protobuf {
    pool: DescriptorPool,
}

impl std::fmt::Debug for Protobuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let services: Vec<String> = self.pool.services().map(|s| s.full_name().into()).collect();
        f.debug_struct("Protobuf")
            .field("services", &services)
            .finish()
    }
}

impl Protobuf {
    /// Read an encoded `FileDescriptorSet`.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let pool = DescriptorPool::decode(bytes).map_err(|e| e.to_string())?;
        if pool.services().next().is_none() {
            return Err("it describes no service".into());
        }
        Ok(Protobuf { pool })
    }

    /// The method a call's path (`/shop.Items/Get`) names, when the set describes it.
    pub fn method(&self, path: &str) -> Option<MethodDescriptor> {
        let (service, method) = crate::grpc::service_and_method(path)?;
        self.pool
            .get_service_by_name(service)?
            .methods()
            .find(|m| m.name() == method)
    }

    /// Whether the set describes the call as streaming (either way): such calls pass
    /// through without comparison.
    pub fn is_streaming(&self, path: &str) -> bool {
        self.method(path)
            .is_some_and(|m| m.is_client_streaming() || m.is_server_streaming())
    }

    /// Whether the method is declared without side effects (`idempotency_level` is
    /// NO_SIDE_EFFECTS or IDEMPOTENT).
    pub fn is_idempotent(&self, path: &str) -> bool {
        self.method(path).is_some_and(|m| {
            let options = m.options();
            options
                .get_field_by_name("idempotency_level")
                .and_then(|v| v.as_enum_number())
                .is_some_and(|level| level == 1 || level == 2)
        })
    }
}

/// A message as JSON under proto3's rules: fields by their `.proto` names, a field at
/// its default value the same as an absent one, enums by name, 64-bit integers as
/// numbers (so tolerances apply), and fields the descriptor does not know as `#N`.
pub fn to_json(desc: &MessageDescriptor, bytes: &[u8]) -> Result<serde_json::Value, String> {
    let message = DynamicMessage::decode(desc.clone(), bytes).map_err(|e| e.to_string())?;
    let options = SerializeOptions::new()
        .stringify_64_bit_integers(false)
        .use_proto_field_name(true)
        .skip_default_fields(true);
    let mut value = message
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|e| e.to_string())?;
    unknown_fields(&message, &mut value);
    Ok(value)
}

/// Put a message's unknown fields (and its nested messages') into its JSON as `#N`,
/// their encoded bytes in hex: a field one side sends and the descriptor set does not
/// describe is a difference too.
fn unknown_fields(message: &DynamicMessage, json: &mut serde_json::Value) {
    let Some(object) = json.as_object_mut() else {
        return;
    };
    for field in message.unknown_fields() {
        let mut bytes = Vec::new();
        field.encode(&mut bytes);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        object.insert(
            format!("#{}", field.number()),
            serde_json::Value::String(hex),
        );
    }
    for (field, value) in message.fields() {
        let Some(child) = object.get_mut(field.name()) else {
            continue;
        };
        match value {
            Value::Message(m) => unknown_fields(m, child),
            Value::List(items) => {
                for (item, child) in items.iter().zip(child.as_array_mut().into_iter().flatten()) {
                    if let Value::Message(m) = item {
                        unknown_fields(m, child);
                    }
                }
            }
            _ => {}
        }
    }
}
