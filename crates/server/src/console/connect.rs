//! What the Connect tab and "Show commands" print for a provider: client setup (Claude Code,
//! Codex, Gemini CLI and the SDKs' environment variables) and code in curl, Python and
//! TypeScript for the provider's type, with its proxy URL and models prefilled. Pure string
//! building. Applications read the gateway token from `TOLLGATE_API_KEY`.
//!
//! Every snippet here is run as written, with the real SDK or tool, against fake upstreams by
//! `crates/cli/tests/it/connect_snippets.rs` (the tools come from `tests/tools/install.sh`).
//! Go is not offered: its module proxy is not reachable where the tests run, so a Go snippet
//! could not be executed.

use tollgate_core::ProviderType;

/// The environment variable every snippet reads the gateway token from.
pub const TOKEN_VAR: &str = "TOLLGATE_API_KEY";

/// A model id to use in examples when the provider lists none.
pub fn example_model(t: ProviderType) -> &'static str {
    t.descriptor().example_model
}

/// Code samples in the three languages, and what to know before running them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippets {
    pub curl: String,
    pub python: String,
    pub typescript: String,
    /// Shown next to the Python sample (Bedrock over plain HTTP: boto3 refuses).
    pub python_note: Option<String>,
}

/// What a provider needs for its examples.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub ptype: ProviderType,
    pub proxy_url: &'a str,
    /// The model the code samples call (the first allowed one, else [`example_model`]).
    pub model: &'a str,
    /// The provider's allow-list (`provider_models`); empty = every model.
    pub models: &'a [String],
    pub region: &'a str,
    /// Azure OpenAI: the `api-version` the examples send.
    pub api_version: &'a str,
    pub passthrough: bool,
}

impl Target<'_> {
    /// AWS clients send bearer tokens over HTTPS only.
    fn plain_http(&self) -> bool {
        self.proxy_url.starts_with("http://")
    }
}

/// What boto3 does with a bearer token on a plain-HTTP endpoint.
pub const BOTO3_HTTPS_NOTE: &str = "boto3 sends the Bedrock API key (AWS_BEARER_TOKEN_BEDROCK) over HTTPS only: against this plain-HTTP proxy URL it stops before sending with \"Bearer authorization requires an HTTPS endpoint.\" Serve Tollgate over HTTPS (--tls-cert/--tls-key, or --tls-self-signed with AWS_CA_BUNDLE set to the CA file it prints) or put a TLS terminator in front of it with --public-url set to its https:// address; meanwhile use the curl or TypeScript sample.";

/// The Claude models Claude Code is pointed at: `(main, small/fast)`, both allowed by the
/// provider. From the allow-list: the first non-Haiku Claude model (else the first model) and
/// the first Haiku (else the main one); with no allow-list, catalog examples.
pub fn claude_models(t: &Target<'_>) -> (String, String) {
    if t.models.is_empty() {
        let (main, small) = match t.ptype {
            ProviderType::Bedrock => {
                let geo = if t.region.starts_with("us-") {
                    "us"
                } else if t.region.starts_with("eu-") {
                    "eu"
                } else {
                    "global"
                };
                (
                    format!("{geo}.anthropic.claude-sonnet-4-5-20250929-v1:0"),
                    format!("{geo}.anthropic.claude-haiku-4-5-20251001-v1:0"),
                )
            }
            ProviderType::Anthropic
            | ProviderType::Openai
            | ProviderType::Google
            | ProviderType::OpenaiCompatible
            | ProviderType::AzureOpenai => ("claude-sonnet-4-5".to_string(), "claude-haiku-4-5".to_string()),
        };
        return (main, small);
    }
    let is_haiku = |m: &&String| m.contains("haiku");
    let main = t
        .models
        .iter()
        .find(|m| m.contains("claude") && !is_haiku(m))
        .or_else(|| t.models.first())
        .cloned()
        .unwrap_or_default();
    let small = t.models.iter().find(is_haiku).cloned().unwrap_or_else(|| main.clone());
    (main, small)
}

/// A call of the provider's main endpoint through the proxy, in each language.
pub fn snippets(t: &Target<'_>) -> Snippets {
    let (p, m) = (t.proxy_url, t.model);
    match t.ptype {
        ProviderType::Openai | ProviderType::OpenaiCompatible => Snippets {
            curl: format!(
                "curl {p}/chat/completions \\\n  -H \"Authorization: Bearer $TOLLGATE_API_KEY\" \\\n  -H \"Content-Type: application/json\" \\\n  -d '{{\"model\": \"{m}\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello\"}}]}}'"
            ),
            python: format!(
                "import os\nfrom openai import OpenAI\n\nclient = OpenAI(base_url=\"{p}\", api_key=os.environ[\"TOLLGATE_API_KEY\"])\nresp = client.chat.completions.create(\n    model=\"{m}\",\n    messages=[{{\"role\": \"user\", \"content\": \"Hello\"}}],\n)\nprint(resp.choices[0].message.content)"
            ),
            typescript: format!(
                "import OpenAI from \"openai\";\n\nconst client = new OpenAI({{ baseURL: \"{p}\", apiKey: process.env.TOLLGATE_API_KEY }});\nconst resp = await client.chat.completions.create({{\n  model: \"{m}\",\n  messages: [{{ role: \"user\", content: \"Hello\" }}],\n}});\nconsole.log(resp.choices[0].message.content);"
            ),
            python_note: None,
        },
        ProviderType::Anthropic if t.passthrough => Snippets {
            curl: format!(
                "curl {p}/v1/messages \\\n  -H \"X-Tollgate-Token: $TOLLGATE_API_KEY\" \\\n  -H \"Authorization: Bearer $ANTHROPIC_AUTH_TOKEN\" \\\n  -H \"anthropic-version: 2023-06-01\" \\\n  -H \"content-type: application/json\" \\\n  -d '{{\"model\": \"{m}\", \"max_tokens\": 1024, \"messages\": [{{\"role\": \"user\", \"content\": \"Hello\"}}]}}'"
            ),
            python: format!(
                "import os\nimport anthropic\n\n# Authorization passthrough: your own Anthropic credential goes upstream as a bearer token,\n# the gateway token rides in X-Tollgate-Token.\nclient = anthropic.Anthropic(\n    base_url=\"{p}\",\n    auth_token=os.environ[\"ANTHROPIC_AUTH_TOKEN\"],\n    default_headers={{\"X-Tollgate-Token\": os.environ[\"TOLLGATE_API_KEY\"]}},\n)\nmsg = client.messages.create(\n    model=\"{m}\",\n    max_tokens=1024,\n    messages=[{{\"role\": \"user\", \"content\": \"Hello\"}}],\n)\nprint(msg.content[0].text)"
            ),
            typescript: format!(
                "import Anthropic from \"@anthropic-ai/sdk\";\n\n// Authorization passthrough: your own Anthropic credential goes upstream as a bearer token,\n// the gateway token rides in X-Tollgate-Token.\nconst client = new Anthropic({{\n  baseURL: \"{p}\",\n  apiKey: null,\n  authToken: process.env.ANTHROPIC_AUTH_TOKEN,\n  defaultHeaders: {{ \"X-Tollgate-Token\": process.env.TOLLGATE_API_KEY }},\n}});\nconst msg = await client.messages.create({{\n  model: \"{m}\",\n  max_tokens: 1024,\n  messages: [{{ role: \"user\", content: \"Hello\" }}],\n}});\nconsole.log(msg.content);"
            ),
            python_note: None,
        },
        ProviderType::Anthropic => Snippets {
            curl: format!(
                "curl {p}/v1/messages \\\n  -H \"x-api-key: $TOLLGATE_API_KEY\" \\\n  -H \"anthropic-version: 2023-06-01\" \\\n  -H \"content-type: application/json\" \\\n  -d '{{\"model\": \"{m}\", \"max_tokens\": 1024, \"messages\": [{{\"role\": \"user\", \"content\": \"Hello\"}}]}}'"
            ),
            python: format!(
                "import os\nimport anthropic\n\nclient = anthropic.Anthropic(base_url=\"{p}\", api_key=os.environ[\"TOLLGATE_API_KEY\"])\nmsg = client.messages.create(\n    model=\"{m}\",\n    max_tokens=1024,\n    messages=[{{\"role\": \"user\", \"content\": \"Hello\"}}],\n)\nprint(msg.content[0].text)"
            ),
            typescript: format!(
                "import Anthropic from \"@anthropic-ai/sdk\";\n\nconst client = new Anthropic({{ baseURL: \"{p}\", apiKey: process.env.TOLLGATE_API_KEY }});\nconst msg = await client.messages.create({{\n  model: \"{m}\",\n  max_tokens: 1024,\n  messages: [{{ role: \"user\", content: \"Hello\" }}],\n}});\nconsole.log(msg.content);"
            ),
            python_note: None,
        },
        ProviderType::Google => Snippets {
            curl: format!(
                "curl \"{p}/v1beta/models/{m}:generateContent\" \\\n  -H \"x-goog-api-key: $TOLLGATE_API_KEY\" \\\n  -H \"Content-Type: application/json\" \\\n  -d '{{\"contents\": [{{\"parts\": [{{\"text\": \"Hello\"}}]}}]}}'"
            ),
            python: format!(
                "import os\nfrom google import genai\nfrom google.genai import types\n\nclient = genai.Client(\n    api_key=os.environ[\"TOLLGATE_API_KEY\"],\n    http_options=types.HttpOptions(base_url=\"{p}\"),\n)\nresp = client.models.generate_content(model=\"{m}\", contents=\"Hello\")\nprint(resp.text)"
            ),
            typescript: format!(
                "import {{ GoogleGenAI }} from \"@google/genai\";\n\nconst ai = new GoogleGenAI({{ apiKey: process.env.TOLLGATE_API_KEY, httpOptions: {{ baseUrl: \"{p}\" }} }});\nconst resp = await ai.models.generateContent({{ model: \"{m}\", contents: \"Hello\" }});\nconsole.log(resp.text);"
            ),
            python_note: None,
        },
        ProviderType::Bedrock => {
            let r = t.region;
            Snippets {
                curl: format!(
                    "curl \"{p}/model/{m}/converse\" \\\n  -H \"Authorization: Bearer $TOLLGATE_API_KEY\" \\\n  -H \"Content-Type: application/json\" \\\n  -d '{{\"messages\": [{{\"role\": \"user\", \"content\": [{{\"text\": \"Hello\"}}]}}]}}'"
                ),
                python: format!(
                    "import os\nimport boto3\n\n# The AWS SDKs send AWS_BEARER_TOKEN_BEDROCK as a bearer token; boto3 over HTTPS only.\nos.environ[\"AWS_BEARER_TOKEN_BEDROCK\"] = os.environ[\"TOLLGATE_API_KEY\"]\nbrt = boto3.client(\"bedrock-runtime\", region_name=\"{r}\", endpoint_url=\"{p}\")\nresp = brt.converse(\n    modelId=\"{m}\",\n    messages=[{{\"role\": \"user\", \"content\": [{{\"text\": \"Hello\"}}]}}],\n)\nprint(resp[\"output\"][\"message\"][\"content\"][0][\"text\"])"
                ),
                typescript: format!(
                    "import {{ BedrockRuntimeClient, ConverseCommand }} from \"@aws-sdk/client-bedrock-runtime\";\n\n// The AWS SDKs send AWS_BEARER_TOKEN_BEDROCK as a bearer token (a Bedrock API key).\nprocess.env.AWS_BEARER_TOKEN_BEDROCK = process.env.TOLLGATE_API_KEY;\nconst client = new BedrockRuntimeClient({{ region: \"{r}\", endpoint: \"{p}\" }});\nconst resp = await client.send(new ConverseCommand({{\n  modelId: \"{m}\",\n  messages: [{{ role: \"user\", content: [{{ text: \"Hello\" }}] }}],\n}}));\nconsole.log(resp.output?.message?.content?.[0]?.text);"
                ),
                python_note: t.plain_http().then(|| BOTO3_HTTPS_NOTE.to_string()),
            }
        }
        ProviderType::AzureOpenai if t.passthrough => {
            let v = t.api_version;
            Snippets {
                curl: format!(
                    "curl \"{p}/openai/deployments/{m}/chat/completions?api-version={v}\" \\\n  -H \"X-Tollgate-Token: $TOLLGATE_API_KEY\" \\\n  -H \"Authorization: Bearer $AZURE_OPENAI_AD_TOKEN\" \\\n  -H \"Content-Type: application/json\" \\\n  -d '{{\"messages\": [{{\"role\": \"user\", \"content\": \"Hello\"}}]}}'"
                ),
                python: format!(
                    "import os\nfrom openai import AzureOpenAI\n\n# Authorization passthrough: your own Microsoft Entra ID token goes upstream,\n# the gateway token rides in X-Tollgate-Token.\nclient = AzureOpenAI(\n    azure_endpoint=\"{p}\",\n    azure_ad_token=os.environ[\"AZURE_OPENAI_AD_TOKEN\"],\n    api_version=\"{v}\",\n    default_headers={{\"X-Tollgate-Token\": os.environ[\"TOLLGATE_API_KEY\"]}},\n)\nresp = client.chat.completions.create(\n    model=\"{m}\",  # the deployment name\n    messages=[{{\"role\": \"user\", \"content\": \"Hello\"}}],\n)\nprint(resp.choices[0].message.content)"
                ),
                typescript: format!(
                    "import {{ AzureOpenAI }} from \"openai\";\n\n// Authorization passthrough: your own Microsoft Entra ID token goes upstream,\n// the gateway token rides in X-Tollgate-Token.\nconst client = new AzureOpenAI({{\n  endpoint: \"{p}\",\n  azureADTokenProvider: async function () {{ return process.env.AZURE_OPENAI_AD_TOKEN; }},\n  apiVersion: \"{v}\",\n  defaultHeaders: {{ \"X-Tollgate-Token\": process.env.TOLLGATE_API_KEY }},\n}});\nconst resp = await client.chat.completions.create({{\n  model: \"{m}\",\n  messages: [{{ role: \"user\", content: \"Hello\" }}],\n}});\nconsole.log(resp.choices[0].message.content);"
                ),
                python_note: None,
            }
        }
        ProviderType::AzureOpenai => {
            let v = t.api_version;
            Snippets {
                curl: format!(
                    "curl \"{p}/openai/deployments/{m}/chat/completions?api-version={v}\" \\\n  -H \"api-key: $TOLLGATE_API_KEY\" \\\n  -H \"Content-Type: application/json\" \\\n  -d '{{\"messages\": [{{\"role\": \"user\", \"content\": \"Hello\"}}]}}'"
                ),
                python: format!(
                    "import os\nfrom openai import AzureOpenAI\n\nclient = AzureOpenAI(\n    azure_endpoint=\"{p}\",\n    api_key=os.environ[\"TOLLGATE_API_KEY\"],\n    api_version=\"{v}\",\n)\nresp = client.chat.completions.create(\n    model=\"{m}\",  # the deployment name\n    messages=[{{\"role\": \"user\", \"content\": \"Hello\"}}],\n)\nprint(resp.choices[0].message.content)"
                ),
                typescript: format!(
                    "import {{ AzureOpenAI }} from \"openai\";\n\nconst client = new AzureOpenAI({{\n  endpoint: \"{p}\",\n  apiKey: process.env.TOLLGATE_API_KEY,\n  apiVersion: \"{v}\",\n}});\nconst resp = await client.chat.completions.create({{\n  model: \"{m}\",\n  messages: [{{ role: \"user\", content: \"Hello\" }}],\n}});\nconsole.log(resp.choices[0].message.content);"
                ),
                python_note: None,
            }
        }
    }
}

/// A file a client setup needs, with where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupFile {
    pub path: String,
    pub content: String,
}

/// A coding tool's setup: its name, a file to write (Codex's `config.toml`) and the shell
/// lines to run. The last shell line starts the tool interactively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSetup {
    pub title: String,
    pub note: String,
    pub file: Option<SetupFile>,
    pub shell: String,
}

/// Claude Code for Anthropic and Bedrock providers; Codex and the SDKs' environment variables
/// for OpenAI and OpenAI-compatible ones; Gemini CLI for Google.
pub fn client_setups(t: &Target<'_>) -> Vec<ClientSetup> {
    let (p, m) = (t.proxy_url, t.model);
    let (main, small) = claude_models(t);
    let models = format!("export ANTHROPIC_MODEL=\"{main}\"\nexport ANTHROPIC_DEFAULT_HAIKU_MODEL=\"{small}\"\n");
    let model_note = "ANTHROPIC_MODEL and ANTHROPIC_DEFAULT_HAIKU_MODEL (the small, fast model for background tasks) name models this provider allows.";
    match t.ptype {
        ProviderType::Anthropic if t.passthrough => vec![ClientSetup {
            title: "Claude Code".into(),
            note: format!("Passthrough: Claude Code keeps its own sign-in (Pro, Max, Team); the gateway token rides in a custom header. {model_note}"),
            file: None,
            shell: format!(
                "export ANTHROPIC_BASE_URL=\"{p}\"\nexport ANTHROPIC_CUSTOM_HEADERS=\"X-Tollgate-Token: $TOLLGATE_API_KEY\"\n{models}claude"
            ),
        }],
        ProviderType::Anthropic => vec![ClientSetup {
            title: "Claude Code".into(),
            note: format!("Claude Code sends ANTHROPIC_AUTH_TOKEN as a bearer token to ANTHROPIC_BASE_URL. {model_note}"),
            file: None,
            shell: format!(
                "export ANTHROPIC_BASE_URL=\"{p}\"\nexport ANTHROPIC_AUTH_TOKEN=\"$TOLLGATE_API_KEY\"\n{models}claude"
            ),
        }],
        ProviderType::Bedrock => vec![ClientSetup {
            title: "Claude Code (Bedrock)".into(),
            note: format!("Claude Code's Bedrock mode with a Bedrock API key: the gateway token. {model_note}"),
            file: None,
            shell: format!(
                "export CLAUDE_CODE_USE_BEDROCK=1\nexport AWS_REGION=\"{}\"\nexport ANTHROPIC_BEDROCK_BASE_URL=\"{p}\"\nexport AWS_BEARER_TOKEN_BEDROCK=\"$TOLLGATE_API_KEY\"\n{models}claude",
                t.region
            ),
        }],
        ProviderType::Openai | ProviderType::OpenaiCompatible => {
            let compat = if t.ptype == ProviderType::OpenaiCompatible {
                " The endpoint must serve the Responses API (/responses)."
            } else {
                ""
            };
            vec![
                ClientSetup {
                    title: "OpenAI SDKs".into(),
                    note: "The OpenAI SDKs (Python, TypeScript) read these variables when the client is created without arguments. Claude Code needs an Anthropic or Bedrock provider.".into(),
                    file: None,
                    shell: format!("export OPENAI_BASE_URL=\"{p}\"\nexport OPENAI_API_KEY=\"$TOLLGATE_API_KEY\""),
                },
                ClientSetup {
                    title: "Codex".into(),
                    note: format!(
                        "Codex does not read OPENAI_BASE_URL: add this provider to ~/.codex/config.toml (Codex calls the Responses API at base_url + /responses and reads the key from env_key).{compat}"
                    ),
                    file: Some(SetupFile {
                        path: "~/.codex/config.toml".into(),
                        content: format!(
                            "model = \"{m}\"\nmodel_provider = \"tollgate\"\n\n[model_providers.tollgate]\nname = \"Tollgate\"\nbase_url = \"{p}\"\nenv_key = \"TOLLGATE_API_KEY\"\nwire_api = \"responses\"\n"
                        ),
                    }),
                    shell: "codex".into(),
                },
            ]
        }
        // Under passthrough the gateway token must travel in a header no environment variable
        // sets: the code samples show it (default_headers).
        ProviderType::AzureOpenai if t.passthrough => Vec::new(),
        ProviderType::AzureOpenai => vec![ClientSetup {
            title: "OpenAI SDKs (AzureOpenAI client)".into(),
            note: "The AzureOpenAI clients (Python, TypeScript) read these variables when created without arguments; the model is the deployment name. Claude Code needs an Anthropic or Bedrock provider.".into(),
            file: None,
            shell: format!(
                "export AZURE_OPENAI_ENDPOINT=\"{p}\"\nexport AZURE_OPENAI_API_KEY=\"$TOLLGATE_API_KEY\"\nexport OPENAI_API_VERSION=\"{}\"",
                t.api_version
            ),
        }],
        ProviderType::Google => vec![ClientSetup {
            title: "Gemini CLI".into(),
            note: "Gemini CLI sends GEMINI_API_KEY in x-goog-api-key to GOOGLE_GEMINI_BASE_URL once its settings select the Gemini API key sign-in; GEMINI_MODEL names a model this provider allows. Claude Code needs an Anthropic or Bedrock provider.".into(),
            file: Some(SetupFile {
                path: "~/.gemini/settings.json".into(),
                content: "{\n  \"security\": { \"auth\": { \"selectedType\": \"gemini-api-key\" } }\n}\n".into(),
            }),
            shell: format!(
                "export GOOGLE_GEMINI_BASE_URL=\"{p}\"\nexport GEMINI_API_KEY=\"$TOLLGATE_API_KEY\"\nexport GEMINI_MODEL=\"{m}\"\ngemini"
            ),
        }],
    }
}

/// The Test Connection equivalents: the check API, the CLI, and the same probe through the
/// proxy with a gateway token.
pub fn check_commands(public_url: &str, name: &str, t: &Target<'_>, model: Option<&str>) -> Vec<(String, String)> {
    let body = model
        .map(|m| format!(" \\\n  -H \"Content-Type: application/json\" -d '{{\"model\": \"{m}\"}}'"))
        .unwrap_or_default();
    let cli_model = model.map(|m| format!(" --model {m}")).unwrap_or_default();
    let p = t.proxy_url;
    let proxy = match t.ptype {
        ProviderType::Openai | ProviderType::OpenaiCompatible => {
            format!("curl {p}/models -H \"Authorization: Bearer $TOLLGATE_API_KEY\"")
        }
        ProviderType::Anthropic if t.passthrough => format!(
            "curl {p}/v1/models -H \"X-Tollgate-Token: $TOLLGATE_API_KEY\" \\\n  -H \"Authorization: Bearer $ANTHROPIC_AUTH_TOKEN\" -H \"anthropic-version: 2023-06-01\""
        ),
        ProviderType::Anthropic => {
            format!("curl {p}/v1/models -H \"x-api-key: $TOLLGATE_API_KEY\" -H \"anthropic-version: 2023-06-01\"")
        }
        ProviderType::Google => format!("curl {p}/v1beta/models -H \"x-goog-api-key: $TOLLGATE_API_KEY\""),
        ProviderType::AzureOpenai if t.passthrough => format!(
            "curl {p}/openai/v1/models -H \"X-Tollgate-Token: $TOLLGATE_API_KEY\" \\\n  -H \"Authorization: Bearer $AZURE_OPENAI_AD_TOKEN\""
        ),
        ProviderType::AzureOpenai => format!("curl {p}/openai/v1/models -H \"api-key: $TOLLGATE_API_KEY\""),
        ProviderType::Bedrock => {
            let m = model.unwrap_or(example_model(ProviderType::Bedrock));
            format!(
                "curl \"{p}/model/{m}/converse\" -H \"Authorization: Bearer $TOLLGATE_API_KEY\" \\\n  -H \"Content-Type: application/json\" -d '{{\"messages\": [{{\"role\": \"user\", \"content\": [{{\"text\": \"ping\"}}]}}], \"inferenceConfig\": {{\"maxTokens\": 1}}}}'"
            )
        }
    };
    let sdk = match t.ptype {
        ProviderType::Openai | ProviderType::OpenaiCompatible => {
            format!("OpenAI(base_url=\"{p}\", api_key=token).models.list()")
        }
        ProviderType::Anthropic if t.passthrough => format!(
            "anthropic.Anthropic(base_url=\"{p}\", auth_token=own_credential, default_headers={{\"X-Tollgate-Token\": token}}).models.list()"
        ),
        ProviderType::Anthropic => format!("anthropic.Anthropic(base_url=\"{p}\", api_key=token).models.list()"),
        ProviderType::Google => {
            format!("genai.Client(api_key=token, http_options={{\"base_url\": \"{p}\"}}).models.list()")
        }
        ProviderType::Bedrock => format!(
            "boto3.client(\"bedrock-runtime\", region_name=\"{}\", endpoint_url=\"{p}\").converse(...)",
            t.region
        ),
        ProviderType::AzureOpenai => format!(
            "AzureOpenAI(azure_endpoint=\"{p}\", api_key=token, api_version=\"{}\").models.list()",
            t.api_version
        ),
    };
    vec![
        (
            "Check API (what the button calls)".into(),
            format!(
                "curl -X POST {public_url}/api/v1/llm-providers/{name}/check \\\n  -H \"Authorization: Bearer $TOLLGATE_ADMIN_TOKEN\"{body}"
            ),
        ),
        ("CLI".into(), format!("tollgate provider check {name}{cli_model}")),
        ("Through the proxy (curl)".into(), proxy),
        ("Through the proxy (Python SDK)".into(), sdk),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(ptype: ProviderType, models: &[String]) -> Target<'_> {
        Target {
            ptype,
            proxy_url: "http://gw.example:8080/llm/v1/providers/prod-x",
            model: "model-x",
            models,
            region: "eu-west-1",
            api_version: "2024-10-21",
            passthrough: false,
        }
    }

    #[test]
    fn every_type_prefills_the_proxy_url_model_and_token_variable_in_every_language() {
        for t in ProviderType::ALL {
            let target = target(t, &[]);
            let s = snippets(&target);
            for (lang, code) in [("curl", &s.curl), ("python", &s.python), ("ts", &s.typescript)] {
                assert!(code.contains("http://gw.example:8080/llm/v1/providers/prod-x"), "{t} {lang}");
                assert!(code.contains("model-x"), "{t} {lang}");
                assert!(code.contains(TOKEN_VAR), "{t} {lang}");
                assert!(!code.contains("TOLLGATE_TOKEN"), "{t} {lang}");
            }
            let setups = client_setups(&target);
            assert!(setups.iter().all(|s| s.shell.contains("prod-x") || s.file.is_some()), "{t}");
            assert!(setups.iter().all(|s| !s.shell.contains("TOLLGATE_TOKEN")), "{t}");
            let checks = check_commands("http://gw.example:8080", "prod-x", &target, Some("model-x"));
            assert!(checks[0].1.contains("/api/v1/llm-providers/prod-x/check"));
            assert!(checks[0].1.contains("TOLLGATE_ADMIN_TOKEN"));
            assert!(checks[1].1.contains("--model model-x"));
            assert!(checks[2].1.contains(TOKEN_VAR) && !checks[2].1.contains("TOLLGATE_TOKEN"));
        }
    }

    #[test]
    fn anthropic_passthrough_sends_the_gateway_token_in_its_header_everywhere() {
        let mut t = target(ProviderType::Anthropic, &[]);
        t.passthrough = true;
        let s = snippets(&t);
        for code in [&s.curl, &s.python, &s.typescript] {
            assert!(code.contains("X-Tollgate-Token"), "{code}");
            assert!(code.contains("ANTHROPIC_AUTH_TOKEN"), "{code}");
        }
        assert!(!s.python.contains("api_key="), "{}", s.python);
        assert!(s.typescript.contains("apiKey: null"), "{}", s.typescript);
        assert!(
            client_setups(&t)[0].shell.contains("ANTHROPIC_CUSTOM_HEADERS=\"X-Tollgate-Token: $TOLLGATE_API_KEY\"")
        );
        // "Show commands": the probe through the proxy too
        let checks = check_commands("http://gw.example:8080", "prod-x", &t, None);
        assert!(checks[2].1.contains("X-Tollgate-Token: $TOLLGATE_API_KEY") && !checks[2].1.contains("x-api-key"));
        assert!(checks[3].1.contains("\"X-Tollgate-Token\": token") && !checks[3].1.contains("api_key="));
    }

    #[test]
    fn claude_code_uses_models_the_provider_allows() {
        let allowed = vec!["claude-sonnet-4-6".to_string(), "claude-haiku-4-5".to_string()];
        let t = target(ProviderType::Anthropic, &allowed);
        assert_eq!(claude_models(&t), ("claude-sonnet-4-6".into(), "claude-haiku-4-5".into()));
        let shell = &client_setups(&t)[0].shell;
        assert!(shell.contains("ANTHROPIC_MODEL=\"claude-sonnet-4-6\""), "{shell}");
        assert!(shell.contains("ANTHROPIC_DEFAULT_HAIKU_MODEL=\"claude-haiku-4-5\""), "{shell}");
        // one allowed model: both point at it
        let only = vec!["claude-opus-4-1".to_string()];
        assert_eq!(
            claude_models(&target(ProviderType::Anthropic, &only)),
            ("claude-opus-4-1".into(), "claude-opus-4-1".into())
        );
        // no allow-list: catalog examples, Bedrock's by region
        let b = target(ProviderType::Bedrock, &[]);
        let (main, small) = claude_models(&b);
        assert!(main.starts_with("eu.anthropic.claude-sonnet") && small.starts_with("eu.anthropic.claude-haiku"));
        let shell = &client_setups(&b)[0].shell;
        assert!(shell.contains("CLAUDE_CODE_USE_BEDROCK=1") && shell.contains("ANTHROPIC_BEDROCK_BASE_URL"));
    }

    #[test]
    fn codex_gets_a_config_toml_and_boto3_gets_its_https_note() {
        for ptype in [ProviderType::Openai, ProviderType::OpenaiCompatible] {
            let t = target(ptype, &[]);
            let setups = client_setups(&t);
            let codex = setups.iter().find(|s| s.title == "Codex").map(|s| s.file.clone());
            let Some(Some(file)) = codex else { panic!("no Codex setup for {ptype}") };
            assert_eq!(file.path, "~/.codex/config.toml");
            for line in [
                "wire_api = \"responses\"",
                "env_key = \"TOLLGATE_API_KEY\"",
                "[model_providers.tollgate]",
                "base_url = \"http://gw.example:8080/llm/v1/providers/prod-x\"",
                "model = \"model-x\"",
            ] {
                assert!(file.content.contains(line), "{line} in {}", file.content);
            }
        }
        let mut t = target(ProviderType::Bedrock, &[]);
        assert_eq!(snippets(&t).python_note.as_deref(), Some(BOTO3_HTTPS_NOTE));
        t.proxy_url = "https://gw.example/llm/v1/providers/prod-x";
        assert_eq!(snippets(&t).python_note, None);
        assert_eq!(snippets(&target(ProviderType::Anthropic, &[])).python_note, None);
    }
}
