"""A chat model that answers from a script, for the framework adapters' tests (no network, no
provider): each turn is the next AIMessage, tool calls or text; what it was shown is kept."""
from typing import Any, List, Optional

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult


class ScriptedChatModel(BaseChatModel):
    script: List[AIMessage]
    seen: List[List[BaseMessage]] = []

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Any, **kwargs: Any) -> "ScriptedChatModel":
        return self

    def _generate(self, messages: List[BaseMessage], stop: Optional[List[str]] = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        self.seen.append(list(messages))
        turn = len(self.seen) - 1
        message = self.script[turn] if turn < len(self.script) else AIMessage(content="(the script is over)")
        return ChatResult(generations=[ChatGeneration(message=message)])
