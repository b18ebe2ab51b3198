//! Certificate-definition operations behind `keystamp certdef`: roles in a pack, cryptoauthlib C
//! source for a definition.

use std::collections::BTreeSet;
use std::fmt::{self, Write as _};

use keystamp_certdef::{
    CertDef, CertDefBuf, CertLoc, DefBlob, DeviceLoc, Role, StdElement, Transform, write_blob,
};

/// Why a definition could not be exported as C.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportCError {
    /// A name given for a C symbol (`what` is the flag it came from) is not a C identifier.
    NotCIdentifier {
        /// Where the name came from (`--name`, `--ca-name`).
        what: &'static str,
        /// The name.
        name: String,
    },
    /// cryptoauthlib counts custom elements in a byte.
    TooManyElements(usize),
}

impl fmt::Display for ExportCError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotCIdentifier { what, name } => write!(f, "{what} {name}: not a C identifier"),
            Self::TooManyElements(n) => {
                write!(f, "{n} custom elements: cryptoauthlib allows at most 255")
            }
        }
    }
}

impl std::error::Error for ExportCError {}

/// Why definitions could not be packed into a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackError {
    /// Two definitions share a name.
    DuplicateName(String),
    /// A definition does not validate.
    Definition {
        /// Its name.
        name: String,
        /// The validator's reason.
        source: keystamp_certdef::Error,
    },
    /// The blob writer refused, or the written blob does not read back.
    Blob {
        /// `pack`, or `pack: the written blob` for the read-back.
        what: &'static str,
        /// The codec's reason.
        source: keystamp_certdef::Error,
    },
}

impl fmt::Display for PackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DuplicateName(n) => write!(
                f,
                "two definitions are named `{n}`: names must be unique in a blob"
            ),
            Self::Definition { name, source } => write!(f, "{name}: {source}"),
            Self::Blob { what, source } => write!(f, "{what}: {source}"),
        }
    }
}

impl std::error::Error for PackError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::DuplicateName(_) => None,
            Self::Definition { source, .. } | Self::Blob { source, .. } => Some(source),
        }
    }
}

/// Packs `defs` (roles from [`assign_roles`]) and the root public key into a definition blob,
/// and checks that the blob reads back the way a device reads it.
pub fn pack(defs: &[CertDefBuf], root: Option<&[u8; 64]>) -> Result<Vec<u8>, PackError> {
    let mut seen = BTreeSet::new();
    for d in defs {
        if !seen.insert(d.name.as_str()) {
            return Err(PackError::DuplicateName(d.name.clone()));
        }
    }
    let roles = assign_roles(defs);
    let views = defs
        .iter()
        .map(|d| {
            d.as_def().map_err(|source| PackError::Definition {
                name: d.name.clone(),
                source,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let pairs: Vec<(Role, &CertDef<'_>)> = roles.iter().copied().zip(views.iter()).collect();
    let cap = 64 + 128 + views.iter().map(|d| 256 + d.template.len()).sum::<usize>();
    let mut blob = vec![0u8; cap];
    let n = write_blob(&pairs, root, &mut blob).map_err(|source| PackError::Blob {
        what: "pack",
        source,
    })?;
    blob.truncate(n);
    // Check what we wrote the way a device will read it.
    DefBlob::parse_validated(&blob).map_err(|source| PackError::Blob {
        what: "pack: the written blob",
        source,
    })?;
    Ok(blob)
}

/// Roles in a pack: a definition another one names as its CA is the signer's; the first
/// other one is the device's; the rest are `Other`.
pub fn assign_roles(defs: &[CertDefBuf]) -> Vec<Role> {
    let cas: BTreeSet<&str> = defs
        .iter()
        .filter_map(|d| d.ca_cert_def.as_deref())
        .collect();
    let mut have_device = false;
    let mut have_signer = false;
    defs.iter()
        .map(|d| {
            if cas.contains(d.name.as_str()) && !have_signer {
                have_signer = true;
                Role::Signer
            } else if !cas.contains(d.name.as_str()) && !have_device {
                have_device = true;
                Role::Device
            } else {
                Role::Other
            }
        })
        .collect()
}

fn is_c_ident(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

fn c_device_loc(l: &DeviceLoc) -> String {
    format!(
        "{{ .zone = {}, .slot = {}, .is_genkey = {}, .offset = {}, .count = {} }}",
        l.zone.c_name(),
        l.slot,
        u8::from(l.is_genkey),
        l.offset,
        l.count
    )
}

fn c_cert_loc(l: &CertLoc) -> String {
    format!("{{ .offset = {}, .count = {} }}", l.offset, l.count)
}

/// cryptoauthlib C source for `def`: the template array, the custom elements array and an
/// `atcacert_def_t` initialiser named `name` (designated initialisers, so the field order of
/// the cryptoauthlib version at hand does not matter).
pub fn export_c(
    def: &CertDefBuf,
    name: &str,
    ca_name: Option<&str>,
    include: &str,
) -> Result<String, ExportCError> {
    if !is_c_ident(name) {
        return Err(ExportCError::NotCIdentifier {
            what: "--name",
            name: name.to_string(),
        });
    }
    let ca_ident = match (&def.ca_cert_def, ca_name) {
        (_, Some(n)) => Some(n.to_string()),
        (Some(ca), None) => Some(format!(
            "g_cert_def_{}",
            ca.chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect::<String>()
        )),
        (None, None) => None,
    };
    if let Some(ca) = &ca_ident
        && !is_c_ident(ca)
    {
        return Err(ExportCError::NotCIdentifier {
            what: "--ca-name",
            name: ca.clone(),
        });
    }
    if def.cert_elements.len() > usize::from(u8::MAX) {
        return Err(ExportCError::TooManyElements(def.cert_elements.len()));
    }
    let mut s = String::new();
    let w = &mut s;
    let _ = (|| -> std::fmt::Result {
        writeln!(
            w,
            "/* Certificate definition \"{}\" generated by keystamp certdef export-c. */",
            def.name.replace("*/", "* /")
        )?;
        writeln!(w, "#include \"{include}\"\n")?;
        if let Some(ca) = &ca_ident {
            writeln!(w, "extern const atcacert_def_t {ca};\n")?;
        }
        writeln!(
            w,
            "const uint8_t {name}_template[{}] = {{",
            def.template.len()
        )?;
        for chunk in def.template.chunks(16) {
            let line: Vec<String> = chunk.iter().map(|b| format!("0x{b:02X}")).collect();
            writeln!(w, "    {},", line.join(", "))?;
        }
        writeln!(w, "}};\n")?;
        if !def.cert_elements.is_empty() {
            writeln!(
                w,
                "const atcacert_cert_element_t {name}_elements[{}] = {{",
                def.cert_elements.len()
            )?;
            for e in &def.cert_elements {
                writeln!(w, "    {{")?;
                writeln!(w, "        .id = \"{}\",", c_escape(e.id.as_str()))?;
                writeln!(w, "        .device_loc = {},", c_device_loc(&e.device_loc))?;
                writeln!(w, "        .cert_loc = {},", c_cert_loc(&e.cert_loc))?;
                // Left out when unused: cryptoauthlib before 3.2 has no `transforms` field.
                if e.transforms != [Transform::None; 2] {
                    writeln!(
                        w,
                        "        .transforms = {{ {}, {} }},",
                        e.transforms[0].c_name(),
                        e.transforms[1].c_name()
                    )?;
                }
                writeln!(w, "    }},")?;
            }
            writeln!(w, "}};\n")?;
        }
        writeln!(w, "const atcacert_def_t {name} = {{")?;
        writeln!(w, "    .type = {},", def.cert_type.c_name())?;
        writeln!(w, "    .template_id = {},", def.template_id)?;
        writeln!(w, "    .chain_id = {},", def.chain_id)?;
        writeln!(w, "    .private_key_slot = {},", def.private_key_slot)?;
        // std_sig_size is left out: 0 means P-256, and older cryptoauthlib lacks the field.
        writeln!(w, "    .sn_source = {},", def.sn_source.c_name())?;
        writeln!(
            w,
            "    .cert_sn_dev_loc = {},",
            c_device_loc(&def.cert_sn_dev_loc)
        )?;
        writeln!(
            w,
            "    .issue_date_format = {},",
            def.issue_date_format.c_name()
        )?;
        writeln!(
            w,
            "    .expire_date_format = {},",
            def.expire_date_format.c_name()
        )?;
        writeln!(w, "    .tbs_cert_loc = {},", c_cert_loc(&def.tbs_cert_loc))?;
        writeln!(w, "    .expire_years = {},", def.expire_years)?;
        writeln!(
            w,
            "    .public_key_dev_loc = {},",
            c_device_loc(&def.public_key_dev_loc)
        )?;
        writeln!(
            w,
            "    .comp_cert_dev_loc = {},",
            c_device_loc(&def.comp_cert_dev_loc)
        )?;
        writeln!(w, "    .std_cert_elements = {{")?;
        for e in StdElement::ALL {
            writeln!(
                w,
                "        {}, /* {} */",
                c_cert_loc(&def.std_cert_elements[*e as usize]),
                e.c_name()
            )?;
        }
        writeln!(w, "    }},")?;
        if def.cert_elements.is_empty() {
            writeln!(w, "    .cert_elements = NULL,")?;
        } else {
            writeln!(w, "    .cert_elements = {name}_elements,")?;
        }
        writeln!(w, "    .cert_elements_count = {},", def.cert_elements.len())?;
        writeln!(w, "    .cert_template = {name}_template,")?;
        writeln!(w, "    .cert_template_size = sizeof({name}_template),")?;
        match &ca_ident {
            Some(ca) => writeln!(w, "    .ca_cert_def = &{ca},")?,
            None => writeln!(w, "    .ca_cert_def = NULL,")?,
        }
        writeln!(w, "}};")
    })();
    Ok(s)
}

fn c_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| match c {
            '"' => vec!['\\', '"'],
            '\\' => vec!['\\', '\\'],
            c => vec![c],
        })
        .collect()
}
