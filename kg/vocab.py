"""IRIs of the RDF vocabularies kgfuse reads by default."""

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
SKOS = "http://www.w3.org/2004/02/skos/core#"
SCHEMA = "http://schema.org/"
DCTERMS = "http://purl.org/dc/terms/"
XSD = "http://www.w3.org/2001/XMLSchema#"

RDF_TYPE = RDF + "type"
RDF_LANG_STRING = RDF + "langString"
RDFS_LABEL = RDFS + "label"
RDFS_COMMENT = RDFS + "comment"
SKOS_PREF_LABEL = SKOS + "prefLabel"
SKOS_ALT_LABEL = SKOS + "altLabel"
SKOS_DEFINITION = SKOS + "definition"
XSD_STRING = XSD + "string"

DEFAULT_LABEL_PREDICATES = (SKOS_PREF_LABEL, RDFS_LABEL, SCHEMA + "name")
DEFAULT_ALIAS_PREDICATES = (SKOS_ALT_LABEL,)
DEFAULT_DESCRIPTION_PREDICATES = (
    RDFS_COMMENT,
    SKOS_DEFINITION,
    DCTERMS + "description",
    SCHEMA + "description",
)
DEFAULT_TYPE_PREDICATES = (RDF_TYPE,)
