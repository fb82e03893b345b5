"""The application-side LLM service: one protocol, OpenAI / Space / tiered implementations.

Modules: `protocol` (interface and result types), `openai_compat` (`OpenAIService`, `SpaceService`,
both the real `openai` client), `breaker` (per-tier circuit breaker), `classifier` (pluggable tier
choice), `tiered` (flag-driven routing with fallback), `factory` (wiring from the declaration).
"""

from infra.service.breaker import CircuitBreaker
from infra.service.classifier import KeywordClassifier, TierClassifier
from infra.service.factory import build_tiered_service
from infra.service.openai_compat import OpenAIService, SpaceService, space_url
from infra.service.protocol import ChatResult, ChatStream, GeneralLLMService, LLMServiceError, Message, Usage
from infra.service.tiered import TieredLLMService

__all__ = [
    "ChatResult", "ChatStream", "CircuitBreaker", "GeneralLLMService", "KeywordClassifier", "LLMServiceError",
    "Message", "OpenAIService", "SpaceService", "TierClassifier", "TieredLLMService", "Usage",
    "build_tiered_service", "space_url",
]
