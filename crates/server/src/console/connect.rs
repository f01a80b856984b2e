//! What the Connect tab and "Show commands" print for a provider: client setup (Claude Code and
//! the SDKs' environment variables) and code in curl, Python, TypeScript and Go for the
//! provider's type, with its proxy URL prefilled. Pure string building.

use tollgate_core::ProviderType;

/// A model id to use in examples when the provider lists none.
pub fn example_model(t: ProviderType) -> &'static str {
    match t {
        ProviderType::Openai => "gpt-4o-mini",
        ProviderType::Anthropic => "claude-haiku-4-5",
        ProviderType::Google => "gemini-2.5-flash",
        ProviderType::Bedrock => "us.anthropic.claude-haiku-4-5-20251001-v1:0",
        ProviderType::OpenaiCompatible => "llama3.1:8b",
    }
}

/// Code samples in the four languages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippets {
    pub curl: String,
    pub python: String,
    pub typescript: String,
    pub go: String,
}

/// What a provider needs for its examples.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub ptype: ProviderType,
    pub proxy_url: &'a str,
    pub model: &'a str,
    pub region: &'a str,
    pub passthrough: bool,
}

/// A call of the provider's main endpoint through the proxy, in each language.
pub fn snippets(t: &Target<'_>) -> Snippets {
    let (p, m) = (t.proxy_url, t.model);
    match t.ptype {
        ProviderType::Openai | ProviderType::OpenaiCompatible => Snippets {
            curl: format!(
                "curl {p}/chat/completions \\\n  -H \"Authorization: Bearer $TOLLGATE_TOKEN\" \\\n  -H \"Content-Type: application/json\" \\\n  -d '{{\"model\": \"{m}\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello\"}}]}}'"
            ),
            python: format!(
                "import os\nfrom openai import OpenAI\n\nclient = OpenAI(base_url=\"{p}\", api_key=os.environ[\"TOLLGATE_TOKEN\"])\nresp = client.chat.completions.create(\n    model=\"{m}\",\n    messages=[{{\"role\": \"user\", \"content\": \"Hello\"}}],\n)\nprint(resp.choices[0].message.content)"
            ),
            typescript: format!(
                "import OpenAI from \"openai\";\n\nconst client = new OpenAI({{ baseURL: \"{p}\", apiKey: process.env.TOLLGATE_TOKEN }});\nconst resp = await client.chat.completions.create({{\n  model: \"{m}\",\n  messages: [{{ role: \"user\", content: \"Hello\" }}],\n}});\nconsole.log(resp.choices[0].message.content);"
            ),
            go: format!(
                "package main\n\nimport (\n\t\"context\"\n\t\"fmt\"\n\t\"os\"\n\n\t\"github.com/openai/openai-go\"\n\t\"github.com/openai/openai-go/option\"\n)\n\nfunc main() {{\n\tclient := openai.NewClient(\n\t\toption.WithBaseURL(\"{p}/\"),\n\t\toption.WithAPIKey(os.Getenv(\"TOLLGATE_TOKEN\")),\n\t)\n\tresp, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{{\n\t\tModel:    \"{m}\",\n\t\tMessages: []openai.ChatCompletionMessageParamUnion{{openai.UserMessage(\"Hello\")}},\n\t}})\n\tif err != nil {{\n\t\tpanic(err)\n\t}}\n\tfmt.Println(resp.Choices[0].Message.Content)\n}}"
            ),
        },
        ProviderType::Anthropic => {
            let auth = if t.passthrough {
                "  -H \"X-Tollgate-Token: $TOLLGATE_TOKEN\" \\\n  -H \"Authorization: Bearer $ANTHROPIC_AUTH_TOKEN\" \\\n"
            } else {
                "  -H \"x-api-key: $TOLLGATE_TOKEN\" \\\n"
            };
            Snippets {
                curl: format!(
                    "curl {p}/v1/messages \\\n{auth}  -H \"anthropic-version: 2023-06-01\" \\\n  -H \"content-type: application/json\" \\\n  -d '{{\"model\": \"{m}\", \"max_tokens\": 1024, \"messages\": [{{\"role\": \"user\", \"content\": \"Hello\"}}]}}'"
                ),
                python: format!(
                    "import os\nimport anthropic\n\nclient = anthropic.Anthropic(base_url=\"{p}\", api_key=os.environ[\"TOLLGATE_TOKEN\"])\nmsg = client.messages.create(\n    model=\"{m}\",\n    max_tokens=1024,\n    messages=[{{\"role\": \"user\", \"content\": \"Hello\"}}],\n)\nprint(msg.content[0].text)"
                ),
                typescript: format!(
                    "import Anthropic from \"@anthropic-ai/sdk\";\n\nconst client = new Anthropic({{ baseURL: \"{p}\", apiKey: process.env.TOLLGATE_TOKEN }});\nconst msg = await client.messages.create({{\n  model: \"{m}\",\n  max_tokens: 1024,\n  messages: [{{ role: \"user\", content: \"Hello\" }}],\n}});\nconsole.log(msg.content);"
                ),
                go: format!(
                    "package main\n\nimport (\n\t\"context\"\n\t\"fmt\"\n\t\"os\"\n\n\t\"github.com/anthropics/anthropic-sdk-go\"\n\t\"github.com/anthropics/anthropic-sdk-go/option\"\n)\n\nfunc main() {{\n\tclient := anthropic.NewClient(\n\t\toption.WithBaseURL(\"{p}/\"),\n\t\toption.WithAPIKey(os.Getenv(\"TOLLGATE_TOKEN\")),\n\t)\n\tmsg, err := client.Messages.New(context.Background(), anthropic.MessageNewParams{{\n\t\tModel:     \"{m}\",\n\t\tMaxTokens: 1024,\n\t\tMessages:  []anthropic.MessageParam{{anthropic.NewUserMessage(anthropic.NewTextBlock(\"Hello\"))}},\n\t}})\n\tif err != nil {{\n\t\tpanic(err)\n\t}}\n\tfmt.Println(msg.Content[0].Text)\n}}"
                ),
            }
        }
        ProviderType::Google => Snippets {
            curl: format!(
                "curl \"{p}/v1beta/models/{m}:generateContent\" \\\n  -H \"x-goog-api-key: $TOLLGATE_TOKEN\" \\\n  -H \"Content-Type: application/json\" \\\n  -d '{{\"contents\": [{{\"parts\": [{{\"text\": \"Hello\"}}]}}]}}'"
            ),
            python: format!(
                "import os\nfrom google import genai\nfrom google.genai import types\n\nclient = genai.Client(\n    api_key=os.environ[\"TOLLGATE_TOKEN\"],\n    http_options=types.HttpOptions(base_url=\"{p}\"),\n)\nresp = client.models.generate_content(model=\"{m}\", contents=\"Hello\")\nprint(resp.text)"
            ),
            typescript: format!(
                "import {{ GoogleGenAI }} from \"@google/genai\";\n\nconst ai = new GoogleGenAI({{ apiKey: process.env.TOLLGATE_TOKEN, httpOptions: {{ baseUrl: \"{p}\" }} }});\nconst resp = await ai.models.generateContent({{ model: \"{m}\", contents: \"Hello\" }});\nconsole.log(resp.text);"
            ),
            go: format!(
                "package main\n\nimport (\n\t\"context\"\n\t\"fmt\"\n\t\"os\"\n\n\t\"google.golang.org/genai\"\n)\n\nfunc main() {{\n\tctx := context.Background()\n\tclient, err := genai.NewClient(ctx, &genai.ClientConfig{{\n\t\tAPIKey:      os.Getenv(\"TOLLGATE_TOKEN\"),\n\t\tBackend:     genai.BackendGeminiAPI,\n\t\tHTTPOptions: genai.HTTPOptions{{BaseURL: \"{p}/\"}},\n\t}})\n\tif err != nil {{\n\t\tpanic(err)\n\t}}\n\tresp, err := client.Models.GenerateContent(ctx, \"{m}\", genai.Text(\"Hello\"), nil)\n\tif err != nil {{\n\t\tpanic(err)\n\t}}\n\tfmt.Println(resp.Text())\n}}"
            ),
        },
        ProviderType::Bedrock => {
            let r = t.region;
            Snippets {
                curl: format!(
                    "curl \"{p}/model/{m}/converse\" \\\n  -H \"Authorization: Bearer $TOLLGATE_TOKEN\" \\\n  -H \"Content-Type: application/json\" \\\n  -d '{{\"messages\": [{{\"role\": \"user\", \"content\": [{{\"text\": \"Hello\"}}]}}]}}'"
                ),
                python: format!(
                    "import os\nimport boto3\n\n# The AWS SDKs send AWS_BEARER_TOKEN_BEDROCK as a bearer token (over HTTPS only).\nos.environ[\"AWS_BEARER_TOKEN_BEDROCK\"] = os.environ[\"TOLLGATE_TOKEN\"]\nbrt = boto3.client(\"bedrock-runtime\", region_name=\"{r}\", endpoint_url=\"{p}\")\nresp = brt.converse(\n    modelId=\"{m}\",\n    messages=[{{\"role\": \"user\", \"content\": [{{\"text\": \"Hello\"}}]}}],\n)\nprint(resp[\"output\"][\"message\"][\"content\"][0][\"text\"])"
                ),
                typescript: format!(
                    "import {{ BedrockRuntimeClient, ConverseCommand }} from \"@aws-sdk/client-bedrock-runtime\";\n\n// Run with AWS_BEARER_TOKEN_BEDROCK=$TOLLGATE_TOKEN in the environment.\nconst client = new BedrockRuntimeClient({{ region: \"{r}\", endpoint: \"{p}\" }});\nconst resp = await client.send(new ConverseCommand({{\n  modelId: \"{m}\",\n  messages: [{{ role: \"user\", content: [{{ text: \"Hello\" }}] }}],\n}}));\nconsole.log(resp.output?.message?.content?.[0]?.text);"
                ),
                go: format!(
                    "package main\n\n// Run with AWS_BEARER_TOKEN_BEDROCK=$TOLLGATE_TOKEN in the environment.\n\nimport (\n\t\"context\"\n\t\"fmt\"\n\n\t\"github.com/aws/aws-sdk-go-v2/aws\"\n\t\"github.com/aws/aws-sdk-go-v2/config\"\n\t\"github.com/aws/aws-sdk-go-v2/service/bedrockruntime\"\n\t\"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types\"\n)\n\nfunc main() {{\n\tctx := context.Background()\n\tcfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(\"{r}\"))\n\tif err != nil {{\n\t\tpanic(err)\n\t}}\n\tclient := bedrockruntime.NewFromConfig(cfg, func(o *bedrockruntime.Options) {{\n\t\to.BaseEndpoint = aws.String(\"{p}\")\n\t}})\n\tout, err := client.Converse(ctx, &bedrockruntime.ConverseInput{{\n\t\tModelId: aws.String(\"{m}\"),\n\t\tMessages: []types.Message{{{{\n\t\t\tRole:    types.ConversationRoleUser,\n\t\t\tContent: []types.ContentBlock{{&types.ContentBlockMemberText{{Value: \"Hello\"}}}},\n\t\t}}}},\n\t}})\n\tif err != nil {{\n\t\tpanic(err)\n\t}}\n\tmsg := out.Output.(*types.ConverseOutputMemberMessage).Value\n\tfmt.Println(msg.Content[0].(*types.ContentBlockMemberText).Value)\n}}"
                ),
            }
        }
    }
}

/// A coding tool's setup: its name and the shell lines to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSetup {
    pub title: String,
    pub note: String,
    pub shell: String,
}

/// Claude Code for Anthropic and Bedrock providers; the SDKs' and CLIs' environment variables
/// for the others.
pub fn client_setups(t: &Target<'_>) -> Vec<ClientSetup> {
    let p = t.proxy_url;
    match t.ptype {
        ProviderType::Anthropic if t.passthrough => vec![ClientSetup {
            title: "Claude Code".into(),
            note: "Passthrough: Claude Code keeps its own sign-in (Pro, Max, Team); the gateway token rides in a custom header.".into(),
            shell: format!(
                "export ANTHROPIC_BASE_URL=\"{p}\"\nexport ANTHROPIC_CUSTOM_HEADERS=\"X-Tollgate-Token: $TOLLGATE_TOKEN\"\nclaude"
            ),
        }],
        ProviderType::Anthropic => vec![ClientSetup {
            title: "Claude Code".into(),
            note: "Claude Code sends ANTHROPIC_AUTH_TOKEN as a bearer token to ANTHROPIC_BASE_URL.".into(),
            shell: format!("export ANTHROPIC_BASE_URL=\"{p}\"\nexport ANTHROPIC_AUTH_TOKEN=\"$TOLLGATE_TOKEN\"\nclaude"),
        }],
        ProviderType::Bedrock => vec![ClientSetup {
            title: "Claude Code (Bedrock)".into(),
            note: "Claude Code's Bedrock mode with a Bedrock API key: the gateway token. AWS clients send it over HTTPS only, so serve Tollgate behind TLS.".into(),
            shell: format!(
                "export CLAUDE_CODE_USE_BEDROCK=1\nexport AWS_REGION=\"{}\"\nexport ANTHROPIC_BEDROCK_BASE_URL=\"{p}\"\nexport AWS_BEARER_TOKEN_BEDROCK=\"$TOLLGATE_TOKEN\"\nclaude",
                t.region
            ),
        }],
        ProviderType::Openai | ProviderType::OpenaiCompatible => vec![ClientSetup {
            title: "OpenAI SDKs and tools".into(),
            note: "The OpenAI SDKs (Python, TypeScript) and tools built on them read these variables. Claude Code needs an Anthropic or Bedrock provider.".into(),
            shell: format!("export OPENAI_BASE_URL=\"{p}\"\nexport OPENAI_API_KEY=\"$TOLLGATE_TOKEN\""),
        }],
        ProviderType::Google => vec![ClientSetup {
            title: "Gemini CLI".into(),
            note: "Gemini CLI sends GEMINI_API_KEY in x-goog-api-key to GOOGLE_GEMINI_BASE_URL. Claude Code needs an Anthropic or Bedrock provider.".into(),
            shell: format!("export GOOGLE_GEMINI_BASE_URL=\"{p}\"\nexport GEMINI_API_KEY=\"$TOLLGATE_TOKEN\"\ngemini"),
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
            format!("curl {p}/models -H \"Authorization: Bearer $TOLLGATE_TOKEN\"")
        }
        ProviderType::Anthropic => {
            format!("curl {p}/v1/models -H \"x-api-key: $TOLLGATE_TOKEN\" -H \"anthropic-version: 2023-06-01\"")
        }
        ProviderType::Google => format!("curl {p}/v1beta/models -H \"x-goog-api-key: $TOLLGATE_TOKEN\""),
        ProviderType::Bedrock => {
            let m = model.unwrap_or(example_model(ProviderType::Bedrock));
            format!(
                "curl \"{p}/model/{m}/converse\" -H \"Authorization: Bearer $TOLLGATE_TOKEN\" \\\n  -H \"Content-Type: application/json\" -d '{{\"messages\": [{{\"role\": \"user\", \"content\": [{{\"text\": \"ping\"}}]}}], \"inferenceConfig\": {{\"maxTokens\": 1}}}}'"
            )
        }
    };
    let sdk = match t.ptype {
        ProviderType::Openai | ProviderType::OpenaiCompatible => {
            format!("OpenAI(base_url=\"{p}\", api_key=token).models.list()")
        }
        ProviderType::Anthropic => format!("anthropic.Anthropic(base_url=\"{p}\", api_key=token).models.list()"),
        ProviderType::Google => {
            format!("genai.Client(api_key=token, http_options={{\"base_url\": \"{p}\"}}).models.list()")
        }
        ProviderType::Bedrock => format!(
            "boto3.client(\"bedrock-runtime\", region_name=\"{}\", endpoint_url=\"{p}\").converse(...)",
            t.region
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

    #[test]
    fn every_type_prefills_the_proxy_url_and_model_in_every_language() {
        for t in ProviderType::ALL {
            let target = Target {
                ptype: t,
                proxy_url: "http://gw.example:8080/llm/v1/providers/prod-x",
                model: "model-x",
                region: "eu-west-1",
                passthrough: false,
            };
            let s = snippets(&target);
            for (lang, code) in [("curl", &s.curl), ("python", &s.python), ("ts", &s.typescript), ("go", &s.go)] {
                assert!(code.contains("http://gw.example:8080/llm/v1/providers/prod-x"), "{t} {lang}");
                assert!(code.contains("model-x"), "{t} {lang}");
                assert!(code.contains("TOLLGATE_TOKEN"), "{t} {lang}");
            }
            assert!(s.go.starts_with("package main"), "{t}");
            let setups = client_setups(&target);
            assert!(setups[0].shell.contains("prod-x"));
            let checks = check_commands("http://gw.example:8080", "prod-x", &target, Some("model-x"));
            assert!(checks[0].1.contains("/api/v1/llm-providers/prod-x/check"));
            assert!(checks[1].1.contains("--model model-x"));
        }
    }

    #[test]
    fn claude_code_for_anthropic_and_bedrock() {
        let mut t = Target {
            ptype: ProviderType::Anthropic,
            proxy_url: "http://h/llm/v1/providers/a",
            model: "m",
            region: "us-east-1",
            passthrough: false,
        };
        assert!(client_setups(&t)[0].shell.contains("ANTHROPIC_AUTH_TOKEN"));
        t.passthrough = true;
        assert!(client_setups(&t)[0].shell.contains("X-Tollgate-Token"));
        assert!(snippets(&t).curl.contains("X-Tollgate-Token"));
        t.ptype = ProviderType::Bedrock;
        let b = &client_setups(&t)[0];
        assert!(b.shell.contains("CLAUDE_CODE_USE_BEDROCK=1") && b.shell.contains("ANTHROPIC_BEDROCK_BASE_URL"));
    }
}
